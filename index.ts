// Public entry point of pulumi-kairos: the build resources and the constructs that compose them.
export { SigningKeys, SigningKeysArgs } from "./provider/signing-keys";
export { SystemExtension, SystemExtensionArgs } from "./provider/system-extension";
export { PromotedArtifact, PromotedArtifactArgs } from "./provider/promoted-artifact";
export * from "./constructs";
