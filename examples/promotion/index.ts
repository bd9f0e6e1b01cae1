// Two stacks of one project: `staging` builds and tests the artifacts; `prod` promotes exactly those
// bytes (checked by sha256) and re-signs the extensions with production keys. Nothing is rebuilt.
//
//   pulumi stack select staging && pulumi up    # build, then test the artifacts
//   pulumi stack select prod && pulumi up       # promote them
import * as pulumi from "@pulumi/pulumi";
import { SigningKeys, SystemExtension, artifactManifest, EnvironmentPromotion } from "../../index";

const stack = pulumi.getStack();
const project = pulumi.getProject();

async function staging() {
    const keys = new SigningKeys("staging-keys", { name: "acme-staging", outputDir: "staging/keys" });
    const k3s = new SystemExtension("k3s", {
        name: "k3s",
        outputDir: "staging/extensions",
        source: { ociLayout: "k3s-sysext.oci.tar" }, // e.g. from `skopeo copy docker://… oci-archive:k3s-sysext.oci.tar`
        signingKeys: keys,
    });
    return { artifacts: artifactManifest([k3s]) };
}

async function prod() {
    const prodKeys = new SigningKeys("prod-keys", { name: "acme-production", outputDir: "prod/keys" }, { protect: true });
    const promotion = await EnvironmentPromotion.create("from-staging", {
        from: new pulumi.StackReference(`organization/${project}/staging`),
        outputDir: "prod/extensions",
        resignWith: prodKeys,
    });
    return { promoted: promotion.artifacts.map((a) => ({ path: a.path, sha256: a.sha256, changes: a.changes })) };
}

export = stack === "prod" ? prod : staging;
