// The tests' S3 server (test/helpers/s3-server.ts: SeaweedFS built by scripts/build-seaweedfs.sh): it
// stores and returns bytes and user metadata, and it checks signatures, so tests against it prove that
// credentials are really passed.
import * as assert from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { S3Server, startS3Server } from "../helpers/s3-server";

describe("S3 test server (SeaweedFS)", function () {
    this.timeout(90000);
    let server: S3Server;
    let s3: S3Client;

    before(async () => {
        server = await startS3Server({ buckets: ["kairos-test"] });
        s3 = server.client();
    });

    after(async () => {
        s3?.destroy();
        await server?.stop();
    });

    it("stores an object and returns the same bytes and metadata", async () => {
        assert.match(server.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
        const body = crypto.randomBytes(300_000);
        const sha256 = crypto.createHash("sha256").update(body).digest("hex");
        await s3.send(new PutObjectCommand({ Bucket: "kairos-test", Key: "dir/blob.bin", Body: body, Metadata: { sha256 } }));

        const got = await s3.send(new GetObjectCommand({ Bucket: "kairos-test", Key: "dir/blob.bin" }));
        const bytes = Buffer.from(await got.Body!.transformToByteArray());
        assert.ok(bytes.equals(body), "the same bytes come back");
        assert.deepStrictEqual(got.Metadata, { sha256 });
        const listed = await s3.send(new ListObjectsV2Command({ Bucket: "kairos-test", Prefix: "dir/" }));
        assert.deepStrictEqual(listed.Contents?.map((o) => [o.Key, o.Size]), [["dir/blob.bin", body.length]]);
    });

    it("refuses a wrong secret key, an unknown access key and an unsigned request", async () => {
        const wrongSecret = server.client({ credentials: { accessKeyId: server.accessKeyId, secretAccessKey: "not-the-secret" }, maxAttempts: 1 });
        const unknownKey = server.client({ credentials: { accessKeyId: "AKIAUNKNOWN000000000", secretAccessKey: server.secretAccessKey }, maxAttempts: 1 });
        try {
            await assert.rejects(wrongSecret.send(new PutObjectCommand({ Bucket: "kairos-test", Key: "evil", Body: "x" })), (err: any) => {
                assert.strictEqual(err.$metadata?.httpStatusCode, 403, `${err.name}: ${err.message}`);
                assert.strictEqual(err.name, "SignatureDoesNotMatch");
                return true;
            });
            await assert.rejects(unknownKey.send(new GetObjectCommand({ Bucket: "kairos-test", Key: "dir/blob.bin" })), (err: any) => {
                assert.strictEqual(err.$metadata?.httpStatusCode, 403, `${err.name}: ${err.message}`);
                return true;
            });
            const unsigned = await fetch(`${server.endpoint}/kairos-test/dir/blob.bin`);
            assert.strictEqual(unsigned.status, 403, "an unsigned GET is refused too");
        } finally {
            wrongSecret.destroy();
            unknownKey.destroy();
        }
        const listed = await s3.send(new ListObjectsV2Command({ Bucket: "kairos-test", Prefix: "evil" }));
        assert.strictEqual(listed.KeyCount, 0, "the refused write left nothing behind");
    });

    it("stops: the process is gone and its data dir removed", async () => {
        const dataDir = server.dataDir;
        assert.ok(fs.existsSync(dataDir));
        await server.stop();
        assert.throws(() => process.kill(server.pid, 0), { code: "ESRCH" }, "weed is gone");
        if (!process.env.KEEP_TEST_DIRS) assert.strictEqual(fs.existsSync(dataDir), false);
        await assert.rejects(fetch(server.endpoint, { signal: AbortSignal.timeout(2000) }), "nothing answers on the endpoint any more");
    });
});
