// Credentials and TLS for the release registry client: docker-distribution over HTTPS (a throwaway CA)
// with htpasswd basic auth, and the bearer-token flow against a replaying server. Credentials come
// only from a DOCKER_CONFIG folder, never from arguments.
import "../../helpers/oras-path";
import { strict as assert } from "assert";
import * as path from "path";
import { LAYOUT_TAG, writeRawExtensionLayout } from "../../../provider/toolkit/release/raw-artifact";
import { RegistryError, copyByDigest, fetchManifest, pushLayout, resolveDigest } from "../../../provider/toolkit/release/oras";
import * as fs from "fs";
import { dockerConfigWith, startRegistry, TestRegistry } from "../../helpers/registry";
import { startTokenRegistry, TokenRegistry } from "../../helpers/token-registry";
import { tempDir } from "../../helpers/temp";

/** Runs `fn` with DOCKER_CONFIG set to `dir` (oras reads $DOCKER_CONFIG/config.json), restoring it after. */
async function withDockerConfig<T>(dir: string, fn: () => Promise<T>): Promise<T> {
    const saved = process.env.DOCKER_CONFIG;
    process.env.DOCKER_CONFIG = dir;
    try {
        return await fn();
    } finally {
        if (saved === undefined) delete process.env.DOCKER_CONFIG;
        else process.env.DOCKER_CONFIG = saved;
    }
}

describe("release: registry credentials and TLS (oras)", function () {
    this.timeout(120000);
    const user = "publisher";
    const password = "correct horse battery staple";
    let work: string;
    let raw: string;
    let noCredentials: string;

    before(() => {
        work = tempDir("registry-auth");
        raw = path.join(work, "tools.sysext.raw");
        fs.writeFileSync(raw, Buffer.alloc(100000, 9));
        noCredentials = tempDir("docker-config-empty"); // no config.json: no credentials at all
    });

    describe("docker-distribution with TLS and htpasswd", () => {
        let registry: TestRegistry;
        let access: { caFile: string };
        before(async () => {
            registry = await startRegistry({ tls: true, htpasswd: { user, password } });
            access = { caFile: registry.caFile! };
        });
        after(async () => registry?.stop());

        it("pushes, resolves, fetches and copies with credentials from DOCKER_CONFIG and the CA from caFile", async () => {
            const layout = await writeRawExtensionLayout(path.join(work, "tls"), raw, "sysext");
            await withDockerConfig(dockerConfigWith(registry.host, user, password), async () => {
                const ref = `${registry.host}/sysext/tools:1.0.0`;
                assert.equal(await pushLayout(path.join(work, "tls"), LAYOUT_TAG, ref, access), layout.manifestDigest);
                assert.equal(await resolveDigest(ref, access), layout.manifestDigest);
                assert.ok((await fetchManifest(ref, access)).equals(layout.manifestBytes));
                assert.equal(await copyByDigest(`${registry.host}/sysext/tools@${layout.manifestDigest}`, `${registry.host}/prod/tools:1.0.0`, access), layout.manifestDigest);
                assert.equal(await resolveDigest(`${registry.host}/sysext/tools:missing`, access), undefined);
            });
        });

        it("fails without credentials, or with a wrong password, naming the registry and where credentials are read", async () => {
            const ref = `${registry.host}/sysext/tools:1.0.0`;
            const refused = (e: Error) =>
                e instanceof RegistryError && e.registry === registry.host && /refused the credentials/.test(e.message) && e.message.includes("config.json");
            // oras itself says "basic credential not found" when config.json has nothing for the host
            await withDockerConfig(noCredentials, () => assert.rejects(resolveDigest(ref, access), (e: Error) => refused(e) && /credential not found/.test(e.message)));
            await withDockerConfig(dockerConfigWith(registry.host, user, "wrong"), () => assert.rejects(resolveDigest(ref, access), (e: Error) => refused(e) && /401|unauthorized/i.test(e.message)));
            await withDockerConfig(noCredentials, () => assert.rejects(pushLayout(path.join(work, "tls"), LAYOUT_TAG, `${registry.host}/other/tools:1`, access), refused));
        });

        it("fails on TLS without the CA, and works with insecure", async () => {
            const ref = `${registry.host}/sysext/tools:1.0.0`;
            await withDockerConfig(dockerConfigWith(registry.host, user, password), async () => {
                await assert.rejects(resolveDigest(ref), (e: Error) => /registry 127\.0\.0\.1:\d+: TLS verification failed/.test(e.message) && /x509|certificate/.test(e.message));
                assert.match((await resolveDigest(ref, { insecure: true }))!, /^sha256:/);
                await assert.rejects(resolveDigest(ref, { plainHttp: true }), RegistryError);
            });
        });
    });

    describe("bearer-token auth (replayed token flow)", () => {
        const manifest = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}');
        let tokens: TokenRegistry;
        before(async () => {
            tokens = await startTokenRegistry({ user, password, repo: "sysext/tools", tag: "2.0.0", manifest, mediaType: "application/vnd.oci.image.manifest.v1+json" });
        });
        after(async () => tokens?.stop());
        beforeEach(() => (tokens.requests.length = 0));

        it("resolveDigest and fetchManifest complete the flow: 401 challenge, Basic at the realm, retry with the bearer token", async () => {
            const ref = `${tokens.host}/sysext/tools:2.0.0`;
            const plain = { plainHttp: true };
            await withDockerConfig(dockerConfigWith(tokens.host, user, password), async () => {
                const digest = await resolveDigest(ref, plain);
                assert.match(digest!, /^sha256:[0-9a-f]{64}$/);
                const basic = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
                const tokenCalls = tokens.requests.filter((r) => r.url.startsWith("/token"));
                assert.ok(tokenCalls.length >= 1, "the client asked the realm for a token");
                assert.ok(tokenCalls.every((r) => r.authorization === basic), "with the Basic credentials from DOCKER_CONFIG");
                assert.ok(tokenCalls.some((r) => new URL(r.url, "http://x").searchParams.get("scope") === "repository:sysext/tools:pull"), "for the scope the challenge named");
                const manifestCalls = tokens.requests.filter((r) => r.url.startsWith("/v2/sysext/tools/manifests/"));
                assert.equal(manifestCalls[0].authorization, undefined, "the first try carries no credentials");
                assert.ok(manifestCalls.some((r) => r.authorization === `Bearer ${tokens.token}`), "the retry carries the bearer token");
                assert.ok(!tokens.requests.some((r) => !r.url.startsWith("/token") && r.authorization === basic), "Basic credentials go to the realm only");

                assert.ok((await fetchManifest(ref, plain)).equals(manifest));
                assert.equal(await resolveDigest(`${tokens.host}/sysext/tools:9.9.9`, plain), undefined, "404 after a good token: not found");
            });
        });

        it("fails with the credential hint when DOCKER_CONFIG has none or the realm refuses them", async () => {
            const ref = `${tokens.host}/sysext/tools:2.0.0`;
            await withDockerConfig(noCredentials, () => assert.rejects(resolveDigest(ref, { plainHttp: true }), /refused the credentials/));
            assert.ok(!tokens.requests.some((r) => r.authorization?.startsWith("Bearer")), "no token without credentials");
            await withDockerConfig(dockerConfigWith(tokens.host, user, "nope"), () => assert.rejects(fetchManifest(ref, { plainHttp: true }), /refused the credentials/));
        });
    });
});
