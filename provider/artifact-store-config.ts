// The program side of the artifact store: a resource without its own `artifactStore` input takes the
// stack's `kairos:artifactStore` config, so one line of config gives every resource the store.
import * as pulumi from "@pulumi/pulumi";
import type { ArtifactStoreSpec } from "./store/artifact-store";

/** `explicit`, else the stack config `kairos:artifactStore` (an object), else none. */
export function artifactStoreInput(explicit: pulumi.Input<ArtifactStoreSpec> | undefined): pulumi.Input<ArtifactStoreSpec> | undefined {
    if (explicit !== undefined) return explicit;
    return new pulumi.Config("kairos").getObject<ArtifactStoreSpec>("artifactStore");
}
