// Public entry point of pulumi-kairos.
export { SigningKeys, SigningKeysArgs } from "./provider/signing-keys";
export { SystemExtension, SystemExtensionArgs } from "./provider/system-extension";
export { PromotedArtifact, PromotedArtifactArgs } from "./provider/promoted-artifact";
export { artifactManifest, ArtifactRecord, EnvironmentPromotion, EnvironmentPromotionArgs } from "./constructs/promotion";
