// releases.json (Kairos' extension catalog): built deterministically, validated, and resolved with the
// same rules as kairos `sdk/extensions/catalog.go`, including Masterminds semver constraints.
import { strict as assert } from "assert";
import { CatalogEntry, CatalogError, buildCatalog, catalogEntries, parseCatalog, resolve, serializeCatalog } from "../../../provider/toolkit/release/catalog";
import { compareVersions, parseConstraint, parseVersion } from "../../../provider/toolkit/release/semver";

const d = (c: string) => c.repeat(64);
const entry = (name: string, version: string, arch: "amd64" | "arm64", digestChar: string, kind: "sysext" | "confext" = "sysext"): CatalogEntry => ({
    name,
    version,
    arch,
    kind,
    reference: `registry.example.com/ext/${name}@sha256:${d(digestChar)}`,
});

describe("release catalog (releases.json)", () => {
    const entries = [
        entry("k3s", "v1.31.2", "amd64", "a"),
        entry("k3s", "v1.31.2", "arm64", "b"),
        entry("k3s", "v1.30.9", "amd64", "c"),
        entry("k3s", "v1.32.0-rc1", "amd64", "d"),
        entry("k3s", "nightly", "amd64", "e"),
        entry("hello", "1.0.0", "amd64", "f"),
        entry("net", "2.0.0", "amd64", "1", "confext"),
    ];

    it("builds Kairos' shape: layers by name, tags newest first, latest the highest release, sorted arch keys", () => {
        const catalog = buildCatalog("example/exts", entries);
        const json = JSON.parse(serializeCatalog(catalog).toString());
        assert.deepEqual(Object.keys(json), ["repo", "layers"]);
        assert.deepEqual(json.layers.map((l: { name: string }) => l.name), ["hello", "k3s", "net"]);
        const k3s = json.layers[1];
        assert.deepEqual(Object.keys(k3s), ["name", "latest", "tags"]);
        assert.equal(k3s.latest, "v1.31.2", "a prerelease is not latest while a release exists; nightly is not semver");
        assert.deepEqual(k3s.tags.map((t: { tag: string }) => t.tag), ["v1.32.0-rc1", "v1.31.2", "v1.30.9", "nightly"]);
        assert.deepEqual(k3s.tags[1], { tag: "v1.31.2", sysext: { amd64: { oci: `registry.example.com/ext/k3s@sha256:${d("a")}` }, arm64: { oci: `registry.example.com/ext/k3s@sha256:${d("b")}` } } });
        assert.deepEqual(json.layers[2].tags, [{ tag: "2.0.0", confext: { amd64: { oci: `registry.example.com/ext/net@sha256:${d("1")}` } } }]);
        assert.ok(serializeCatalog(catalog).toString().endsWith("}\n"));
    });

    it("is byte-identical whatever order the entries come in, and round-trips through parse/entries", () => {
        const a = serializeCatalog(buildCatalog("r", entries));
        const b = serializeCatalog(buildCatalog("r", [...entries].reverse()));
        assert.ok(a.equals(b));
        const again = serializeCatalog(buildCatalog("r", catalogEntries(parseCatalog(a))));
        assert.ok(again.equals(a));
    });

    it("takes an explicit latest, and needs one when no version is semver", () => {
        assert.equal(buildCatalog("r", entries, { k3s: "nightly" }).layers[1].latest, "nightly");
        assert.throws(() => buildCatalog("r", [entry("x", "nightly", "amd64", "a")]), /no version is semver .*name it in latest/);
        assert.equal(buildCatalog("r", [entry("x", "1.0.0-rc1", "amd64", "a"), entry("x", "1.0.0-rc2", "amd64", "b")]).layers[0].latest, "1.0.0-rc2", "only prereleases: the highest");
    });

    it("fails with every problem at once: tag references, bad arch/kind/name, duplicates, unknown latest", () => {
        const bad = [
            { ...entry("k3s", "1.0.0", "amd64", "a"), reference: "registry.example.com/ext/k3s:1.0.0" },
            { ...entry("k3s", "1.0.0", "amd64", "a"), reference: `registry.example.com/ext/k3s@sha256:${"a".repeat(63)}` },
            { ...entry("k3s", "1.0.1", "amd64", "a"), arch: "x86_64" as "amd64" },
            { ...entry("k3s", "1.0.2", "amd64", "a"), kind: "portable" as "sysext" },
            entry("../k3s", "1.0.0", "amd64", "a"),
            entry("k3s", "1.0.0", "amd64", "b"),
        ];
        assert.throws(
            () => buildCatalog("r", bad, { nope: "1" }),
            (e: Error) => {
                assert.ok(e instanceof CatalogError);
                assert.equal(e.problems.length, 8, e.message);
                assert.match(e.message, /entries\[0\].*reference `registry.example.com\/ext\/k3s:1.0.0` must be repo@sha256:<64 hex>/);
                assert.match(e.message, /entries\[1\].*must be repo@sha256/);
                assert.match(e.message, /arch `x86_64` must be one of amd64, arm64/);
                assert.match(e.message, /kind `portable`/);
                assert.match(e.message, /name `\.\.\/k3s`/);
                assert.match(e.message, /entries\[1\].*given twice/);
                assert.match(e.message, /entries\[5\].*given twice/);
                assert.match(e.message, /latest\.nope: no entry is named/);
                return true;
            },
        );
    });

    describe("resolve (Kairos' rules)", () => {
        const catalog = buildCatalog("example/exts", entries);
        const oci = (c: string) => `registry.example.com/ext/k3s@sha256:${d(c)}`;

        it("no version → latest; an exact tag (semver or not) → that tag", () => {
            assert.deepEqual(resolve(catalog, "k3s", undefined, "arm64"), { repository: "example/exts", name: "k3s", version: "v1.31.2", architecture: "arm64", oci: oci("b") });
            assert.equal(resolve(catalog, "k3s", "nightly", "amd64").oci, oci("e"));
            assert.equal(resolve(catalog, "k3s", "v1.32.0-rc1", "amd64").oci, oci("d"));
        });

        it("a semver constraint → the highest match; prereleases only when the constraint names one", () => {
            assert.equal(resolve(catalog, "k3s", ">=1.30", "amd64").version, "v1.31.2");
            assert.equal(resolve(catalog, "k3s", "~1.30", "amd64").version, "v1.30.9");
            assert.equal(resolve(catalog, "k3s", "<1.31", "amd64").version, "v1.30.9");
            assert.equal(resolve(catalog, "k3s", ">=1.32.0-0", "amd64").version, "v1.32.0-rc1");
            assert.equal(resolve(catalog, "k3s", "1.31", "amd64").version, "v1.31.2", "a partial version is a range");
            assert.throws(() => resolve(catalog, "k3s", ">=2", "amd64"), /no version of layer "k3s" satisfies ">=2"/);
        });

        it("errors worded as Kairos words them", () => {
            assert.throws(() => resolve(catalog, "nope", undefined, "amd64"), /^Error: layer "nope" is not available$/);
            assert.throws(() => resolve(catalog, "k3s", "not a version!", "amd64"), /version "not a version!" is not available for layer "k3s"/);
            assert.throws(() => resolve(catalog, "k3s", "v1.30.9", "arm64"), /architecture "arm64" is not available for layer "k3s" version "v1.30.9"/);
            assert.throws(() => resolve(catalog, "net", undefined, "amd64"), /architecture "amd64" is not available/, "Kairos reads sysext only");
            assert.equal(resolve(catalog, "net", undefined, "amd64", "confext").version, "2.0.0");
        });

        it("reads a catalog as Kairos' hadron-layers publishes it (extra fields, an empty sysext map)", () => {
            const published = parseCatalog(
                JSON.stringify({
                    generated: "2026-09-01T08:24:03Z",
                    repo: "kairos-io/hadron-layers",
                    layers: [{ name: "fwupd", title: "fwupd", latest: "2.1.7", tags: [
                        { tag: "2.1.7", digest: `sha256:${d("0")}`, sysext: { amd64: { oci: `ghcr.io/x/fwupd@sha256:${d("4")}` } } },
                        { tag: "2.1.6", sysext: {} },
                        { tag: "2.1.5", sysext: { amd64: { oci: "ghcr.io/x/fwupd:2.1.5" } } },
                    ] }],
                }),
            );
            assert.equal(resolve(published, "fwupd", undefined, "amd64").oci, `ghcr.io/x/fwupd@sha256:${d("4")}`);
            assert.throws(() => resolve(published, "fwupd", "2.1.6", "amd64"), /architecture "amd64" is not available/);
            assert.throws(() => resolve(published, "fwupd", "2.1.5", "amd64"), /must end with @sha256: and 64 hexadecimal characters/);
            assert.throws(() => parseCatalog('{"repo":"x"}'), /`layers` must be a list/);
        });
    });

    describe("Masterminds semver v3.4.0 port", () => {
        const cases: [string, string, boolean][] = [
            ["1.2.3", "1.2.3", true], ["=1.2.3", "1.2.4", false], ["!=4.1", "4.1.0", false], ["!=4.1", "5.1.0", true],
            [">1.1", "4.1.0", true], [">1.1", "1.1.0", false], [">1.1", "1.1.1", false], [">1.1", "1.2.0", true], [">1.1.0", "1.1.1", true],
            ["<1.1", "1.0.0", true], ["<1.1", "1.1.0", false], ["<=1.1", "1.1.1", true], ["<=1.1", "1.2.0", false], ["=<1.1.0", "1.1.0", true],
            [">=1.1", "0.0.9", false], ["=>1.1", "1.1.0", true],
            ["~1.2.3", "1.2.4", true], ["~1.2.3", "1.3.4", false], ["~1.2", "1.2.9", true], ["~1", "1.9.0", true], ["~1", "2.0.0", false], ["~>1.2", "1.2.5", true], ["~0.0.0", "4.0.0", true],
            ["^1.2.3", "1.8.9", true], ["^1.2.3", "2.0.0", false], ["^1.2.3", "1.2.2", false], ["^0.2.3", "0.2.5", true], ["^0.2.3", "0.3.0", false], ["^0.0.3", "0.0.3", true], ["^0.0.3", "0.0.4", false], ["^0", "0.9.1", true],
            ["1.2 - 1.4.5", "1.4.5", true], ["1.2 - 1.4.5", "1.4.6", false], ["1.2 - 1.4.5", "1.1.9", false],
            [">=1.1, <2", "1.5.0", true], [">=1.1 <2", "2.0.0", false], ["<1 || >=3", "2.0.0", false], ["<1 || >=3", "3.1.0", true],
            ["1.x", "1.9.9", true], ["1.x", "2.0.0", false], ["*", "5.0.0", true], ["1.2.x", "1.2.7", true], ["1.2.*", "1.3.0", false],
            [">=1.0.0", "1.1.0-beta", false], [">=1.0.0-0", "1.1.0-beta", true], ["<1.0.0-beta.2", "1.0.0-beta.11", false], ["<1.0.0-beta.11", "1.0.0-beta.2", true],
            ["=v1.2", "1.2.7", true], ["v1.2.3", "v1.2.3+build.5", true],
        ];
        for (const [constraint, version, expected] of cases) {
            it(`${constraint} ${expected ? "matches" : "does not match"} ${version}`, () => {
                const c = parseConstraint(constraint);
                const v = parseVersion(version);
                assert.ok(c && v, "both parse");
                assert.equal(c.check(v), expected);
            });
        }

        it("refuses what Masterminds refuses, accepts what it coerces", () => {
            for (const bad of ["not a version!", ">>1", "1.2.3 - ", "~", ""]) assert.equal(parseConstraint(bad), undefined, bad);
            for (const bad of ["1.2.3.4", "1.0.0-01", "1.0.0-", "x"]) assert.equal(parseVersion(bad), undefined, bad);
            assert.deepEqual(parseVersion("v01.2"), { major: 1n, minor: 2n, patch: 0n, pre: "", metadata: "", original: "v01.2" });
            const order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"];
            for (let i = 1; i < order.length; i++) assert.equal(compareVersions(parseVersion(order[i - 1])!, parseVersion(order[i])!), -1, `${order[i - 1]} < ${order[i]}`);
            assert.equal(compareVersions(parseVersion("1.0.0+a")!, parseVersion("1.0.0+b")!), 0, "build metadata is ignored");
        });
    });
});
