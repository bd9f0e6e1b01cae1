// Environment promotion: a later stack (prod) takes the exact artifacts an earlier stack (staging)
// built and tested, through a StackReference, without rebuilding them.
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { PromotedArtifact } from "../provider/promoted-artifact";
import type { SigningKeys } from "../provider/signing-keys";
import { artifactStoreInput, dbPublisher } from "../provider/artifact-store-config";
import type { SystemExtension } from "../provider/system-extension";
import type { ArtifactStoreSpec } from "../provider/store/manifest";

/** One entry of the manifest a stack exports for promotion. */
export interface ArtifactRecord {
    name: string;
    path: string;
    sha256: string;
    kind: "sysext" | "confext" | "file";
}

/** The manifest to export from the earlier stack (`export const artifacts = artifactManifest(...)`). */
export function artifactManifest(
    extensions: SystemExtension[],
    files: { name: string; path: pulumi.Input<string>; sha256: pulumi.Input<string> }[] = [],
): pulumi.Output<ArtifactRecord[]> {
    const ext = extensions.map((e) =>
        pulumi.all([e.path, e.sha256]).apply(([p, sha256]) => ({
            name: path.basename(p),
            path: p,
            sha256,
            kind: (p.endsWith(".confext.raw") ? "confext" : "sysext") as ArtifactRecord["kind"],
        })),
    );
    const other = files.map((f) => pulumi.all([f.path, f.sha256]).apply(([p, sha256]) => ({ name: f.name, path: p, sha256, kind: "file" as const })));
    return pulumi.all([...ext, ...other]);
}

export interface EnvironmentPromotionArgs {
    /** The earlier stack, e.g. new pulumi.StackReference("organization/my-project/staging"). */
    from: pulumi.StackReference;
    /** Where this environment keeps the promoted artifacts. */
    outputDir: string;
    /** Name of the earlier stack's manifest output. @default "artifacts" */
    manifestOutput?: string;
    /** Re-sign extensions with this environment's keys (their db key). @default keep the tested signatures */
    resignWith?: SigningKeys;
    /**
     * The earlier environment's artifact store: artifacts are taken from it by their tested sha256, so
     * this environment needs no access to the earlier one's disk. @default the paths in the manifest
     */
    fromStore?: pulumi.Input<ArtifactStoreSpec>;
    /** This environment's artifact store (same server as fromStore: server-side copies). @default the stack config kairos:artifactStore */
    artifactStore?: pulumi.Input<ArtifactStoreSpec>;
}

/** Creates one PromotedArtifact per entry of the earlier stack's manifest. */
export class EnvironmentPromotion extends pulumi.ComponentResource {
    readonly artifacts: PromotedArtifact[] = [];

    private constructor(name: string, opts?: pulumi.ComponentResourceOptions) {
        super("kairos:index:EnvironmentPromotion", name, {}, opts);
    }

    /** Async because the manifest must be known to know how many artifacts there are. */
    static async create(name: string, args: EnvironmentPromotionArgs, opts?: pulumi.ComponentResourceOptions): Promise<EnvironmentPromotion> {
        const self = new EnvironmentPromotion(name, opts);
        const details = await args.from.getOutputDetails(args.manifestOutput ?? "artifacts");
        const manifest = (details.value ?? details.secretValue) as ArtifactRecord[] | undefined;
        if (!Array.isArray(manifest)) {
            throw new Error(`${name}: the earlier stack has no '${args.manifestOutput ?? "artifacts"}' output; export artifactManifest(...) there and run its update first`);
        }
        const resign = args.resignWith?.files.apply((f) => ({ key: f.db.key, certificate: f.db.pem }));
        for (const a of manifest) {
            self.artifacts.push(
                new PromotedArtifact(
                    `${name}-${a.name}`,
                    {
                        source: a.path, expectedSha256: a.sha256, outputDir: args.outputDir, kind: a.kind, resign: a.kind === "file" ? undefined : resign,
                        fromStore: args.fromStore,
                        // Manifests signed with this environment's db key when it re-signs with its keys.
                        artifactStore: args.resignWith ? artifactStoreInput(args.artifactStore, dbPublisher(args.resignWith)) : args.artifactStore,
                    },
                    { parent: self },
                ),
            );
        }
        self.registerOutputs({ artifacts: self.artifacts.map((a) => a.path) });
        return self;
    }
}
