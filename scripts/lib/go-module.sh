# Sourced by the scripts that build a Go program from its module as the main module (SeaweedFS,
# BuildKit: `go install module@version` refuses modules whose go.mod has replace or exclude
# directives). go_module_source NAME MODULE VERSION WORK copies the module's source to WORK/src,
# writable (the module cache is read-only); NAME prefixes the error.
go_module_source() {
  local name="$1" module="$2" version="$3" work="$4" src_dir
  src_dir="$(cd "$work" && GOFLAGS= go mod download -json "$module@$version" | sed -nE 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p')"
  [ -n "$src_dir" ] && [ -d "$src_dir" ] || { echo "$name: go mod download $module@$version gave no source folder" >&2; return 1; }
  cp -r "$src_dir" "$work/src"
  chmod -R u+w "$work/src"
}
