// gen-sdk writes Node.js, Python and Go SDKs for the kairos resource plugin from schema.json, with
// Pulumi's own code generators (pkg/v3/codegen at the CLI's pinned version).
//
//	go run . -schema ../../schema.json -out <dir> [-lang nodejs,python,go]
//
// `pulumi package gen-sdk` would do the same, but in 3.248 it needs each language's host plugin,
// which cannot be built here; the generators themselves are plain Go packages.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/blang/semver"
	gogen "github.com/pulumi/pulumi/pkg/v3/codegen/go"
	"github.com/pulumi/pulumi/pkg/v3/codegen/nodejs"
	"github.com/pulumi/pulumi/pkg/v3/codegen/python"
	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
)

// noReferences is the loader for a schema that refers to no other package: binding needs a loader,
// and any lookup is a mistake worth a clear error.
type noReferences struct{}

func (noReferences) LoadPackage(pkg string, _ *semver.Version) (*schema.Package, error) {
	return nil, fmt.Errorf("schema.json refers to package %q; it should refer to none", pkg)
}

func (noReferences) LoadPackageV2(_ context.Context, d *schema.PackageDescriptor) (*schema.Package, error) {
	return nil, fmt.Errorf("schema.json refers to package %q; it should refer to none", d.Name)
}

func (noReferences) LoadPackageReference(pkg string, _ *semver.Version) (schema.PackageReference, error) {
	return nil, fmt.Errorf("schema.json refers to package %q; it should refer to none", pkg)
}

func (noReferences) LoadPackageReferenceV2(_ context.Context, d *schema.PackageDescriptor) (schema.PackageReference, error) {
	return nil, fmt.Errorf("schema.json refers to package %q; it should refer to none", d.Name)
}

func bind(path string) (*schema.Package, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var spec schema.PackageSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pkg, diags, err := schema.BindSpec(spec, noReferences{}, schema.ValidationOptions{})
	if err != nil {
		return nil, err
	}
	if diags.HasErrors() {
		return nil, fmt.Errorf("%s: %s", path, diags.Error())
	}
	return pkg, nil
}

func generate(lang, schemaPath string) (map[string][]byte, error) {
	// Each generator records its own language info in the package, so each gets a fresh binding.
	pkg, err := bind(schemaPath)
	if err != nil {
		return nil, err
	}
	const tool = "pulumi-kairos gen-sdk"
	switch lang {
	case "nodejs":
		return nodejs.GeneratePackage(tool, pkg, nil, nil, false, noReferences{})
	case "python":
		return python.GeneratePackage(tool, pkg, nil, noReferences{})
	case "go":
		return gogen.GeneratePackage(tool, pkg, nil)
	}
	return nil, fmt.Errorf("unknown language %q (nodejs, python, go)", lang)
}

func main() {
	schemaPath := flag.String("schema", "schema.json", "the package schema")
	out := flag.String("out", "sdk", "folder to write <lang>/ into")
	langs := flag.String("lang", "nodejs,python,go", "languages, comma-separated")
	flag.Parse()
	for _, lang := range strings.Split(*langs, ",") {
		files, err := generate(lang, *schemaPath)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gen-sdk %s: %v\n", lang, err)
			os.Exit(1)
		}
		names := make([]string, 0, len(files))
		for name := range files {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			target := filepath.Join(*out, lang, name)
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			if err := os.WriteFile(target, files[name], 0o644); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		fmt.Printf("%s: %d files\n", lang, len(files))
	}
}
