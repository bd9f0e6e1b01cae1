// Versions and constraints exactly as Kairos reads them: a port of github.com/Masterminds/semver/v3
// v3.4.0 (the version kairos-io/kairos pins in go.mod), used by `sdk/extensions/catalog.go` to pick a
// catalog version. Ported: NewVersion in its default coercing mode (`v` prefix, missing minor/patch,
// leading zeros), Compare (prerelease lower than release, numeric identifiers below alphanumeric,
// build metadata ignored), and NewConstraint/Check: `=` (or none), `!=`, `>`, `<`, `>=`/`=>`,
// `<=`/`=<`, `~`/`~>`, `^`, wildcards `x`/`X`/`*` and partial versions, AND by comma or space, OR by
// `||`, hyphen ranges `1.2 - 1.4.5`; prereleases match only when that OR group names a prerelease.
// The regular expressions are Masterminds' own, so odd inputs are accepted or refused as Kairos does.

export interface SemVer {
    major: bigint;
    minor: bigint;
    patch: bigint;
    pre: string;
    metadata: string;
    original: string;
}

const LOOSE = /^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*))?(\+([0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*))?$/;
const ALLOWED = /^[0-9A-Za-z-]+$/;

/** Masterminds' NewVersion (coercing, its default): the version, or undefined when it is not one. */
export function parseVersion(v: string): SemVer | undefined {
    const m = LOOSE.exec(v);
    if (!m) return undefined;
    const pre = m[5] ?? "";
    const metadata = m[8] ?? "";
    if (pre && !pre.split(".").every((p) => p !== "" && ALLOWED.test(p) && !(/^[0-9]+$/.test(p) && p.length > 1 && p[0] === "0"))) return undefined;
    if (metadata && !metadata.split(".").every((p) => p !== "" && ALLOWED.test(p))) return undefined;
    const seg = (s: string | undefined) => (s ? BigInt(s.replace(/^\./, "")) : 0n);
    const u64 = (n: bigint) => n <= 0xffffffffffffffffn;
    const version = { major: seg(m[1]), minor: seg(m[2]), patch: seg(m[3]), pre, metadata, original: v };
    return u64(version.major) && u64(version.minor) && u64(version.patch) ? version : undefined;
}

function cmp(a: bigint, b: bigint): number {
    return a < b ? -1 : a > b ? 1 : 0;
}

/** -1, 0 or 1; build metadata is ignored, a prerelease sorts below its release. */
export function compareVersions(v: SemVer, o: SemVer): number {
    const d = cmp(v.major, o.major) || cmp(v.minor, o.minor) || cmp(v.patch, o.patch);
    if (d) return d;
    if (v.pre === "" && o.pre === "") return 0;
    if (v.pre === "") return 1;
    if (o.pre === "") return -1;
    return comparePrerelease(v.pre, o.pre);
}

function comparePrerelease(v: string, o: string): number {
    const s = v.split(".");
    const t = o.split(".");
    for (let i = 0; i < Math.max(s.length, t.length); i++) {
        const d = comparePrePart(s[i] ?? "", t[i] ?? "");
        if (d) return d;
    }
    return 0;
}

function comparePrePart(s: string, o: string): number {
    if (s === o) return 0;
    if (s === "") return o !== "" ? -1 : 1;
    if (o === "") return s !== "" ? 1 : -1;
    const sNum = /^[0-9]+$/.test(s);
    const oNum = /^[0-9]+$/.test(o);
    if (!sNum && !oNum) return s > o ? 1 : -1;
    if (!oNum) return -1;
    if (!sNum) return 1;
    return BigInt(s) > BigInt(o) ? 1 : -1;
}

// ---- constraints -------------------------------------------------------------------------------

const OPS = "=||!=|>|<|>=|=>|<=|=<|~|~>|\\^";
const CV = "v?([0-9|x|X|\\*]+)(\\.[0-9|x|X|\\*]+)?(\\.[0-9|x|X|\\*]+)?(-([0-9A-Za-z\\-]+(\\.[0-9A-Za-z\\-]+)*))?(\\+([0-9A-Za-z\\-]+(\\.[0-9A-Za-z\\-]+)*))?";
const CONSTRAINT = new RegExp(`^\\s*(${OPS})\\s*(${CV})\\s*$`);
const RANGE = new RegExp(`\\s*(${CV})\\s+-\\s+(${CV})\\s*`, "g");
const FIND = new RegExp(`(${OPS})\\s*(${CV})`, "g");
const VALID = new RegExp(`^(\\s*(${OPS})\\s*(${CV})\\s*)((?:\\s+|,\\s*)(${OPS})\\s*(${CV})\\s*)*$`);

interface Comparator {
    op: string;
    con: SemVer;
    dirty: boolean;
    minorDirty: boolean;
    patchDirty: boolean;
}

export interface Constraint {
    check(v: SemVer): boolean;
}

const isX = (s: string | undefined) => s === "x" || s === "X" || s === "*";

function parseComparator(c: string): Comparator | undefined {
    const m = CONSTRAINT.exec(c);
    if (!m) return undefined;
    const pre = m[6] ?? "";
    let ver = m[2];
    let dirty = false;
    let minorDirty = false;
    let patchDirty = false;
    if (isX(m[3]) || !m[3]) {
        ver = `0.0.0${pre}`;
        dirty = true;
    } else if (isX(m[4]?.replace(/^\./, "")) || !m[4]) {
        ver = `${m[3]}.0.0${pre}`;
        dirty = minorDirty = true;
    } else if (isX(m[5]?.replace(/^\./, "")) || !m[5]) {
        ver = `${m[3]}${m[4]}.0${pre}`;
        dirty = patchDirty = true;
    }
    const con = parseVersion(ver);
    return con && { op: m[1], con, dirty, minorDirty, patchDirty };
}

/** Masterminds' NewConstraint: the constraint, or undefined when it does not parse. */
export function parseConstraint(input: string): Constraint | undefined {
    let c = input;
    for (const m of [...input.matchAll(RANGE)]) c = c.replace(m[0], `>= ${m[1]}, <= ${m[11]} `);
    const groups: { comparators: Comparator[]; hasPre: boolean }[] = [];
    for (const or of c.split("||")) {
        if (!VALID.test(or)) return undefined;
        const found = [...or.matchAll(FIND)].map((m) => m[0]);
        const comparators: Comparator[] = [];
        for (const s of found.length ? found : [or]) {
            const p = parseComparator(s);
            if (!p) return undefined;
            comparators.push(p);
        }
        groups.push({ comparators, hasPre: comparators.some((x) => x.con.pre !== "") });
    }
    return { check: (v) => groups.some((g) => g.comparators.every((x) => OPERATORS[x.op](v, x, g.hasPre))) };
}

type Op = (v: SemVer, c: Comparator, includePre: boolean) => boolean;
const lt = (v: SemVer, o: SemVer) => compareVersions(v, o) < 0;

const tilde: Op = (v, c, pre) => {
    if (v.pre && !pre) return false;
    if (lt(v, c.con)) return false;
    if (c.con.major === 0n && c.con.minor === 0n && c.con.patch === 0n && !c.minorDirty && !c.patchDirty) return true;
    if (v.major !== c.con.major) return false;
    return !(v.minor !== c.con.minor && !c.minorDirty);
};

const OPERATORS: Record<string, Op> = {
    "": (v, c, pre) => tildeOrEqual(v, c, pre),
    "=": (v, c, pre) => tildeOrEqual(v, c, pre),
    "!=": (v, c, pre) => {
        if (v.pre && !pre) return false;
        if (c.dirty) {
            if (c.con.major !== v.major) return true;
            if (c.con.minor !== v.minor && !c.minorDirty) return true;
            if (c.minorDirty) return false;
            if (c.con.patch !== v.patch && !c.patchDirty) return true;
            if (c.patchDirty) return (v.pre !== "" || c.con.pre !== "") && comparePrerelease(v.pre, c.con.pre) !== 0;
        }
        return compareVersions(v, c.con) !== 0;
    },
    ">": (v, c, pre) => {
        if (v.pre && !pre) return false;
        if (!c.dirty) return compareVersions(v, c.con) === 1;
        if (v.major > c.con.major) return true;
        if (v.major < c.con.major || c.minorDirty) return false;
        if (c.patchDirty) return v.minor > c.con.minor;
        return compareVersions(v, c.con) === 1;
    },
    "<": (v, c, pre) => !(v.pre && !pre) && lt(v, c.con),
    ">=": (v, c, pre) => !(v.pre && !pre) && compareVersions(v, c.con) >= 0,
    "<=": (v, c, pre) => {
        if (v.pre && !pre) return false;
        if (!c.dirty) return compareVersions(v, c.con) <= 0;
        if (v.major > c.con.major) return false;
        return !(v.major === c.con.major && v.minor > c.con.minor && !c.minorDirty);
    },
    "~": tilde,
    "^": (v, c, pre) => {
        if (v.pre && !pre) return false;
        if (lt(v, c.con)) return false;
        if (c.con.major > 0n || c.minorDirty) return v.major === c.con.major;
        if (c.con.major === 0n && v.major > 0n) return false;
        if (c.con.minor > 0n || c.patchDirty) return v.minor === c.con.minor;
        if (c.con.minor === 0n && v.minor > 0n) return false;
        return c.con.patch === v.patch;
    },
};
OPERATORS["=>"] = OPERATORS[">="];
OPERATORS["=<"] = OPERATORS["<="];
OPERATORS["~>"] = tilde;

function tildeOrEqual(v: SemVer, c: Comparator, pre: boolean): boolean {
    if (v.pre && !pre) return false;
    if (c.dirty) return tilde(v, c, pre);
    return compareVersions(v, c.con) === 0;
}
