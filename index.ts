// Public entry point of pulumi-kairos: the build resources and the constructs that compose them.
export { SigningKeys, SigningKeysArgs } from "./provider/signing-keys";
export { SystemExtension, SystemExtensionArgs } from "./provider/system-extension";
export { KairosUkiImage, KairosUkiImageArgs } from "./provider/kairos-uki-image";
export { BootMedia, BootMediaArgs } from "./provider/boot-media";
export { PromotedArtifact, PromotedArtifactArgs } from "./provider/promoted-artifact";
export * from "./constructs";
