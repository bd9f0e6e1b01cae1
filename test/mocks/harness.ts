// Pulumi runtime mocks for the construct tests (the only place this project mocks anything: there is
// no Docker engine and no AWS here). setMocks is process-global, so these tests run in their own
// mocha process; every test file shares the one mock installed here.
//
// Two views of each resource:
//   - `created`: what the mock engine received (type, name, resolved inputs), from newResource;
//   - a Recorder's `registrations`: the constructor arguments (parent, dependsOn, other options),
//     caught by a resource transformation passed to the component and inherited by its children.
import { createHash } from "crypto";
import * as pulumi from "@pulumi/pulumi";

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

/** A stable fake SHA-256 (lowercase hex) for a label; tests compute the same to predict outputs. */
export function fakeHex(label: string): string {
    return createHash("sha256").update(label).digest("hex");
}

const created: MockedResource[] = [];

/** The outputs a real provider would add, made up deterministically from the resource name. */
function fakeState(type: string, name: string, inputs: Record<string, any>): Record<string, any> {
    switch (type) {
        case TYPES.dockerImage: {
            const repository = String(inputs.imageName).replace(/:[^/:]+$/, "");
            const digest = `sha256:${fakeHex(`image:${name}`)}`;
            return { ...inputs, baseImageName: inputs.imageName, repoDigest: inputs.skipPush ? digest : `${repository}@${digest}`, registryServer: repository.split("/")[0] };
        }
        case TYPES.command:
            return { ...inputs, stdout: "", stderr: "" };
        case TYPES.systemExtension:
            return {
                ...inputs,
                path: `${inputs.outputDir}/${inputs.name}.${inputs.kind ?? "sysext"}.raw`,
                sha256: fakeHex(`sha256:${name}`),
                size: 4096,
                rootHash: fakeHex(`root:${name}`),
                inputHash: fakeHex(`input:${name}`),
            };
        case TYPES.signingKeys: {
            const dir = inputs.outputDir;
            const files = Object.fromEntries(["PK", "KEK", "db"].map((r) => [r, { key: `${dir}/${r}.key`, pem: `${dir}/${r}.pem`, der: `${dir}/${r}.der`, esl: `${dir}/${r}.esl`, auth: `${dir}/${r}.auth` }]));
            const certificates = Object.fromEntries(["PK", "KEK", "db"].map((r) => [r, { sha256Fingerprint: fakeHex(`cert:${name}:${r}`), subject: `CN=${inputs.name}-${r}` }]));
            return { ...inputs, keyDir: dir, files, certificates, tpmPcrKeyFile: `${dir}/tpm2-pcr-private.pem`, keyMaterialHash: fakeHex(`keys:${name}`), inputHash: fakeHex(`keys-input:${name}`) };
        }
        case TYPES.bucket:
            return { ...inputs, bucket: inputs.bucket ?? `${name}-20260826`, arn: `arn:aws:s3:::${inputs.bucket ?? `${name}-20260826`}` };
        default:
            return inputs;
    }
}

let installed: Promise<void> | undefined;

/** Installs the mock engine once for the whole process (not in preview: every output is known). */
export function installMocks(): Promise<void> {
    installed ??= pulumi.runtime.setMocks(
        {
            newResource(args) {
                const id = `${args.name}-id`;
                const state = fakeState(args.type, args.name, args.inputs);
                created.push({ type: args.type, name: args.name, inputs: args.inputs, state, id });
                return { id, state };
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

/** What the mock engine received for the resource named `name` (names are unique per test). */
export function createdResource(name: string): MockedResource {
    const found = created.filter((r) => r.name === name);
    if (found.length !== 1) throw new Error(`expected one resource named ${name}, found ${found.length} (${created.map((r) => r.name).join(", ")})`);
    return found[0];
}

export function promiseOf<T>(o: pulumi.Output<T>): Promise<T> {
    return new Promise((resolve) => o.apply((v) => resolve(v)));
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
