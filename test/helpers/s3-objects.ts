// Direct object access on the tests' S3 server: what a test does behind the store's back (tamper with
// an object, delete one, list what is there).
import { createHash } from "crypto";
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
        async createBucket(bucket: string): Promise<void> {
            await client.send(new CreateBucketCommand({ Bucket: bucket }));
        },
    };
}
