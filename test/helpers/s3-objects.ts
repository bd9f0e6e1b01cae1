// Direct object access on the tests' S3 server: what a test does behind the store's back (tamper with
// an object, delete one, list what is there).
import * as fs from "fs";
import { X509Certificate, createHash, createPrivateKey, sign } from "crypto";
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import type { S3Server } from "./s3-server";

export function s3Objects(server: S3Server) {
    const client = server.client();
    return {
        client,
        async put(bucket: string, key: string, body: Buffer): Promise<void> {
            await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
        },
        async delete(bucket: string, key: string): Promise<void> {
            await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
        },
        /** sha256 of the object's bytes as the server returns them. */
        async sha256(bucket: string, key: string): Promise<string> {
            const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
            return createHash("sha256").update(await res.Body!.transformToByteArray()).digest("hex");
        },
        /** Every key under `prefix`, sorted. */
        async keys(bucket: string, prefix: string): Promise<string[]> {
            const keys: string[] = [];
            let token: string | undefined;
            do {
                const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
                keys.push(...(page.Contents ?? []).map((o) => o.Key!));
                token = page.NextContinuationToken;
            } while (token);
            return keys.sort();
        },
        async get(bucket: string, key: string): Promise<Buffer> {
            const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
            return Buffer.from(await res.Body!.transformToByteArray());
        },
        async createBucket(bucket: string): Promise<void> {
            await client.send(new CreateBucketCommand({ Bucket: bucket }));
        },
    };
}

/** Canonical JSON (sorted keys, no spaces), written here independently of the code under test. */
function canonical(v: unknown): string {
    if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
    if (v && typeof v === "object") return `{${Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(",")}}`;
    return JSON.stringify(v);
}

/**
 * A manifest object as a bucket writer makes it by hand: `manifest` signed with `signer` (a key file and
 * its certificate) into the store's envelope, or, without a signer, the bare manifest JSON.
 */
export function handMadeManifest(manifest: Record<string, unknown>, signer?: { key: string; certificate: string }): Buffer {
    if (!signer) return Buffer.from(JSON.stringify(manifest));
    const payload = Buffer.from(canonical(manifest), "utf8");
    const cert = new X509Certificate(fs.readFileSync(signer.certificate));
    return Buffer.from(JSON.stringify({
        format: "pulumi-kairos-signed-manifest/1",
        payload: payload.toString("base64"),
        signature: sign("sha256", payload, createPrivateKey(fs.readFileSync(signer.key))).toString("base64"),
        certificateSha256: createHash("sha256").update(cert.raw).digest("hex"),
    }));
}

/** The manifest inside a stored envelope (what a bucket reader sees; the signature is not checked here). */
export function envelopePayload(body: Buffer): Record<string, any> {
    return JSON.parse(Buffer.from(JSON.parse(body.toString("utf8")).payload, "base64").toString("utf8"));
}
