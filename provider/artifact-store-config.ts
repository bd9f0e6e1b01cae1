// The program side of the artifact store: a resource without its own `artifactStore` input takes the
// stack's `kairos:artifactStore` config, so one line of config gives every resource the store.
import * as pulumi from "@pulumi/pulumi";
import type { ArtifactStoreSpec } from "./store/manifest";
import type { ArtifactStoreArgs } from "./generated/contract";

type Publisher = NonNullable<ArtifactStoreSpec["publisher"]>;

/**
 * `explicit`, else the stack config `kairos:artifactStore` (an object), else none. With
 * `defaultPublisher` (constructs pass the project's db key and certificate), a store that names no
 * publisher gets that one.
 */
export function artifactStoreInput(explicit: pulumi.Input<ArtifactStoreArgs> | undefined, defaultPublisher?: pulumi.Input<Publisher>): pulumi.Input<ArtifactStoreArgs> | undefined {
    const spec: pulumi.Input<ArtifactStoreArgs> | undefined = explicit !== undefined ? explicit : new pulumi.Config("kairos").getObject<ArtifactStoreSpec>("artifactStore");
    if (spec === undefined || defaultPublisher === undefined) return spec;
    return pulumi.all([spec, defaultPublisher]).apply(([s, p]) => (s && !s.publisher ? { ...s, publisher: p } : s));
}

/** A SigningKeys resource's db key and certificate as a store publisher. */
export function dbPublisher(keys: { files: pulumi.Output<Record<string, { key: string; pem: string }>> }): pulumi.Output<Publisher> {
    return keys.files.apply((f) => ({ certificate: f.db.pem, key: f.db.key }));
}
