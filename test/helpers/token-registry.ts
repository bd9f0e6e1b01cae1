// A registry that uses bearer-token auth, replayed by a tiny Node HTTP server: no token server runs on
// this machine, and distribution 2.8 only issues challenges for one (it needs an external issuer).
// It replays the exchanges of the distribution token spec (docs/spec/auth/token.md) for ONE manifest:
//  1. any /v2/ request without `Authorization: Bearer <token>` → 401 with
//     `WWW-Authenticate: Bearer realm="http://127.0.0.1:P/token",service="…",scope="repository:<repo>:pull"`;
//  2. GET /token?service=…&scope=… with the right Basic credentials → 200 {"token": …}, else 401;
//  3. the retry with the bearer token → the manifest (HEAD: its headers), or 404 MANIFEST_UNKNOWN.
// Every request is recorded, so a test can prove the client walked the whole flow.
import { createHash } from "crypto";
import * as http from "http";
import * as net from "net";

export interface RecordedRequest {
    method: string;
    url: string;
    authorization?: string;
}

export interface TokenRegistry {
    host: string; // 127.0.0.1:PORT
    service: string;
    token: string;
    requests: RecordedRequest[];
    stop(): Promise<void>;
}

export async function startTokenRegistry(opts: { user: string; password: string; repo: string; tag: string; manifest: Buffer; mediaType: string }): Promise<TokenRegistry> {
    const service = "token-test-registry";
    const token = `tok-${createHash("sha256").update(String(Math.random())).digest("hex").slice(0, 24)}`;
    const digest = `sha256:${createHash("sha256").update(opts.manifest).digest("hex")}`;
    const requests: RecordedRequest[] = [];
    const basic = `Basic ${Buffer.from(`${opts.user}:${opts.password}`).toString("base64")}`;
    let host = "";

    const server = http.createServer((req, res) => {
        requests.push({ method: req.method ?? "", url: req.url ?? "", authorization: req.headers.authorization });
        const url = new URL(req.url ?? "/", `http://${host}`);
        if (url.pathname === "/token") {
            if (req.headers.authorization !== basic || url.searchParams.get("service") !== service) {
                res.writeHead(401, { "Content-Type": "application/json" }).end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "bad credentials" }] }));
                return;
            }
            res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ token, expires_in: 300 }));
            return;
        }
        const m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(url.pathname);
        if (req.headers.authorization !== `Bearer ${token}`) {
            const scope = m ? `,scope="repository:${m[1]}:pull"` : "";
            res.writeHead(401, {
                "Content-Type": "application/json",
                "Docker-Distribution-Api-Version": "registry/2.0",
                "WWW-Authenticate": `Bearer realm="http://${host}/token",service="${service}"${scope}`,
            });
            res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] }));
            return;
        }
        if (m && m[1] === opts.repo && (m[2] === opts.tag || m[2] === digest)) {
            res.writeHead(200, { "Content-Type": opts.mediaType, "Docker-Content-Digest": digest, "Content-Length": String(opts.manifest.length) });
            res.end(req.method === "HEAD" ? undefined : opts.manifest);
            return;
        }
        res.writeHead(404, { "Content-Type": "application/json" }).end(JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN", message: "manifest unknown" }] }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    return {
        host,
        service,
        token,
        requests,
        stop: () => new Promise((resolve) => server.close(() => resolve())),
    };
}
