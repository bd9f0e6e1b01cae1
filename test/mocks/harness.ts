// Pulumi runtime mocks for the construct tests (the only place this project mocks anything: there is
// no Docker engine and no AWS here). setMocks is process-global, so these tests run in their own
// mocha process; every test file shares the one mock installed here.
//
// What is mocked, and what is not:
//   - the third-party packages (@pulumi/docker, @pulumi/command, @pulumi/aws): the mock engine records
//     their inputs and answers with made-up outputs that stand in for the services not available here
//     (a docker Image's repoDigest, a created bucket's name). Tests read these from `created` entries'
//     `state` rather than predicting them; they are never evidence of anything but the wiring.
//   - this package's own resources (the kairos dynamic types): never faked. The mock engine runs the
//     real provider handler (provider/handlers.ts: check, then create) on the resolved inputs, so those
//     inputs must be real (a payload folder, a key folder in a temp dir), and every output a test reads
//     is what the handler built. The one exception is a resource a test names with `inputsOnly()`: one
//     whose input comes from a mocked service and so cannot be built here (a SystemExtension pulling a
//     registry image by a made-up digest). The engine records its inputs and answers with them alone,
//     with none of its outputs; tests assert only the inputs it received.
//
// Two views of each resource:
//   - `created`: what the mock engine received (type, name, resolved inputs), from newResource;
//   - a Recorder's `registrations`: the constructor arguments (parent, dependsOn, other options),
//     caught by a resource transformation passed to the component and inherited by its children.
import { createHash } from "crypto";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { handlerFor } from "../../provider/handlers";
import { SigningKeys } from "../../provider/signing-keys";
import { tempDir } from "../helpers/temp";

export interface MockedResource {
    type: string;
    name: string;
    inputs: Record<string, any>;
    state: Record<string, any>;
    id: string;
}

export interface Registration {
    type: string;
    name: string;
    props: Record<string, any>;
    opts: pulumi.CustomResourceOptions & pulumi.ComponentResourceOptions;
    resource: pulumi.Resource;
}

export const TYPES = {
    dockerImage: "docker:index/image:Image",
    command: "command:local:Command",
    systemExtension: "pulumi-nodejs:dynamic/kairos:SystemExtension",
    signingKeys: "pulumi-nodejs:dynamic/kairos:SigningKeys",
    bucket: "aws:s3/bucket:Bucket",
    bucketObject: "aws:s3/bucketObjectv2:BucketObjectv2",
} as const;

/** The type prefix of this package's dynamic resources; the rest of the type is the resource's name in the kairos:index: token. */
const OWN_TYPE_PREFIX = "pulumi-nodejs:dynamic/kairos:";

const created: MockedResource[] = [];
const unbuildable = new Set<string>();

/**
 * Names resources of this package that the mock engine records but does not build, because an input
 * comes from a mocked service (call before constructing them). Their state is their inputs only.
 */
export function inputsOnly(...names: string[]): void {
    for (const n of names) unbuildable.add(n);
}

/** Made-up outputs for the mocked third-party resources (services not available here). */
function mockedServiceState(type: string, name: string, inputs: Record<string, any>): Record<string, any> {
    switch (type) {
        case TYPES.dockerImage: {
            // A stand-in for the registry's manifest digest (or the local image ID when not pushed).
            const repository = String(inputs.imageName).replace(/:[^/:]+$/, "");
            const digest = `sha256:${createHash("sha256").update(`mock docker image ${name}`).digest("hex")}`;
            return { ...inputs, baseImageName: inputs.imageName, repoDigest: inputs.skipPush ? digest : `${repository}@${digest}`, registryServer: repository.split("/")[0] };
        }
        case TYPES.command:
            return { ...inputs, stdout: "", stderr: "" };
        case TYPES.bucket:
            return { ...inputs, bucket: inputs.bucket ?? `${name}-20260826`, arn: `arn:aws:s3:::${inputs.bucket ?? `${name}-20260826`}` };
        default:
            return inputs;
    }
}

/** The inputs as the dynamic-provider process sees them: secrets unwrapped. */
function revealed(v: any): any {
    if (Array.isArray(v)) return v.map(revealed);
    if (v && typeof v === "object") {
        if (v[pulumi.runtime.specialSigKey] === pulumi.runtime.specialSecretSig) return revealed(v.value);
        return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, revealed(x)]));
    }
    return v;
}

/** One of this package's resources: built by its real handler, or (named by inputsOnly) recorded only. */
async function ownResource(type: string, name: string, inputs: Record<string, any>): Promise<MockedResource> {
    if (unbuildable.has(name)) return { type, name, inputs, state: inputs, id: `${name}-not-built` };
    const token = `kairos:index:${type.slice(OWN_TYPE_PREFIX.length)}`;
    const handler = handlerFor(token);
    const { inputs: checked, failures } = await handler.check({}, revealed(inputs));
    if ((failures ?? []).length > 0) {
        throw new Error(`${token} ${name}: the real handler's check refused the inputs: ${JSON.stringify(failures)}`);
    }
    const { id, outs } = await handler.create(checked);
    return { type, name, inputs, state: outs, id };
}

let installed: Promise<void> | undefined;

/** Installs the mock engine once for the whole process (not in preview: every output is known). */
export function installMocks(): Promise<void> {
    installed ??= pulumi.runtime.setMocks(
        {
            async newResource(args) {
                let resource: MockedResource;
                if (args.type.startsWith(OWN_TYPE_PREFIX)) {
                    // A failed build fails the registration: the resource's outputs reject with its error.
                    resource = await ownResource(args.type, args.name, args.inputs);
                } else {
                    resource = { type: args.type, name: args.name, inputs: args.inputs, state: mockedServiceState(args.type, args.name, args.inputs), id: `${args.name}-id` };
                }
                created.push(resource);
                return { id: resource.id, state: resource.state };
            },
            call(args) {
                return args.inputs;
            },
        },
        "project",
        "stack",
        false,
    );
    return installed;
}

/** A real SigningKeys key set (the handler generates it, a couple of seconds) in a fresh temp folder. */
export function realSigningKeys(name: string, opts?: pulumi.CustomResourceOptions): SigningKeys {
    return new SigningKeys(name, { name: "acme", outputDir: path.join(tempDir(`mock-${name}`), "keys") }, opts);
}

/** What the mock engine received for the resource named `name` (names are unique per test). */
export function createdResource(name: string): MockedResource {
    const found = created.filter((r) => r.name === name);
    if (found.length !== 1) throw new Error(`expected one resource named ${name}, found ${found.length} (${created.map((r) => r.name).join(", ")})`);
    return found[0];
}

/**
 * The value of an output. Output.promise() is internal to @pulumi/pulumi, but unlike apply() it
 * rejects when the resource failed to register (e.g. a real build refused its inputs), so a test
 * fails with that error instead of waiting for the timeout.
 */
export function promiseOf<T>(o: pulumi.Output<T>): Promise<T> {
    return (o as unknown as { promise(): Promise<T> }).promise();
}

/** Records every resource constructed under a component given `recorder.opts()`. */
export class Recorder {
    readonly registrations: Registration[] = [];

    opts(): pulumi.ComponentResourceOptions {
        return {
            transformations: [
                (a) => {
                    this.registrations.push({ type: a.type, name: a.name, props: a.props, opts: a.opts as Registration["opts"], resource: a.resource });
                    return undefined;
                },
            ],
        };
    }

    /** Waits until every recorded resource is registered with the mock engine. */
    async settle(): Promise<void> {
        await Promise.all(this.registrations.map((r) => promiseOf(r.resource.urn)));
    }

    get(name: string): Registration {
        const r = this.registrations.find((x) => x.name === name);
        if (!r) throw new Error(`no resource named ${name}; recorded: ${this.names().join(", ")}`);
        return r;
    }

    names(): string[] {
        return this.registrations.map((r) => r.name);
    }

    /** [type, name] of every child (the component itself excluded), in construction order. */
    children(component: pulumi.Resource): Array<[string, string]> {
        return this.registrations.filter((r) => r.resource !== component).map((r) => [r.type, r.name]);
    }

    /** The dependsOn a resource was constructed with, as resources. */
    dependsOn(name: string): pulumi.Resource[] {
        const d = this.get(name).opts.dependsOn;
        if (d === undefined) return [];
        if (!Array.isArray(d)) throw new Error(`${name}: dependsOn is not a plain array`);
        return d as pulumi.Resource[];
    }
}

/** Runs `fn` and returns the error it throws (failing when it does not throw). */
export function errorOf(fn: () => unknown): Error & { errors?: Array<{ propertyPath: string; reason: string }> } {
    try {
        fn();
    } catch (e) {
        return e as Error;
    }
    throw new Error("expected an error, but none was thrown");
}
