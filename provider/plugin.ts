// pulumi-resource-kairos: the same handlers as the dynamic providers (handlers.ts), served as a Pulumi
// resource provider plugin, so YAML programs (and every other language), `pulumi import` and logs on
// the resource's own row work. A thin transport: it finds the handler by the URN's type token and
// routes the build log to that resource.
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import * as provider from "@pulumi/pulumi/provider";
import { handlerFor } from "./handlers";
import type { Handler } from "./artifact-contract";
import { LogSink, withLogSink } from "./build-log";
import { SCHEMA_PATH, loadPackageSchema } from "./validation/schema-validator";

/** The plugin's name: `pulumi-resource-kairos`, package `kairos` in schema.json. */
export const PLUGIN_NAME = "kairos";

/** "urn:pulumi:dev::proj::parent$kairos:index:SigningKeys::keys" -> "kairos:index:SigningKeys". */
export function tokenOfUrn(urn: string): string {
    const type = urn.split("::")[2];
    if (!type) throw new Error(`not a resource URN: ${urn}`);
    return type.split("$").pop()!;
}

/** Build-log lines on the resource's row in `pulumi up`: kept lines, and live progress for running steps. */
function resourceRowSink(urn: string): LogSink {
    // pulumi.log needs only the URN of the resource a message belongs to
    const resource = { urn: { promise: async () => urn } } as unknown as pulumi.Resource;
    return {
        info: (m) => void pulumi.log.info(m, resource).catch(() => undefined),
        progress: (m) => void pulumi.log.info(m, resource, undefined, true).catch(() => undefined),
    };
}

export function kairosProvider(): provider.Provider {
    const version: string = loadPackageSchema().version;
    const serve = <T>(urn: string, call: (h: Handler) => Promise<T>): Promise<T> =>
        withLogSink(resourceRowSink(urn), async () => call(handlerFor(tokenOfUrn(urn))));
    return {
        version,
        schema: fs.readFileSync(SCHEMA_PATH, "utf8"),
        check: (urn, olds, news) => serve(urn, (h) => h.check(olds, news)),
        diff: (id, urn, olds, news) => serve(urn, (h) => h.diff(id, olds, news)),
        create: (urn, inputs) => serve(urn, (h) => h.create(inputs)),
        read: (id, urn, props) => serve(urn, (h) => h.read(id, props ?? {})),
        update: (id, urn, olds, news) => serve(urn, (h) => h.update(id, olds, news)),
        delete: (id, urn, props) => serve(urn, (h) => h.delete(id, props)),
    };
}

/**
 * `pulumi import` sends a ReadRequest with no properties (only the id), and @pulumi/pulumi's provider
 * server (3.248) calls `getProperties().toJavaScript()` on it unguarded. Reading an absent Struct as an
 * empty one lets the handler see `{}`, which is what an import is.
 */
export function readEmptyPropertiesOnImport(): void {
    const sdkRoot = require.resolve("@pulumi/pulumi");
    const provproto = require(require.resolve("@pulumi/pulumi/proto/provider_pb", { paths: [sdkRoot] }));
    const structproto = require(require.resolve("google-protobuf/google/protobuf/struct_pb", { paths: [sdkRoot] }));
    const original = provproto.ReadRequest.prototype.getProperties;
    provproto.ReadRequest.prototype.getProperties = function (this: unknown) {
        return original.call(this) ?? new structproto.Struct();
    };
}

/** The engine starts a plugin with flags and, last, the engine's address. */
export function engineAddress(args: string[]): string | undefined {
    return args.filter((a) => !a.startsWith("-")).pop();
}

if (require.main === module) {
    const args = process.argv.slice(2);
    // provider.main keeps the engine address to itself; pulumi.log finds the engine through this variable.
    const engine = engineAddress(args);
    if (engine) process.env.PULUMI_NODEJS_ENGINE = engine;
    readEmptyPropertiesOnImport();
    provider.main(kairosProvider(), args).catch((e: unknown) => {
        console.error(e instanceof Error ? e.stack ?? e.message : String(e));
        process.exit(1);
    });
}
