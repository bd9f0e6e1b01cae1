// Public entry point of pulumi-kairos: the build resources and the constructs that compose them.
export { SigningKeys, SigningKeysArgs } from "./provider/signing-keys";
export { SystemExtension, SystemExtensionArgs } from "./provider/system-extension";
export { KairosUkiImage, KairosUkiImageArgs } from "./provider/kairos-uki-image";
export { BootMedia, BootMediaArgs } from "./provider/boot-media";
export { PromotedArtifact, PromotedArtifactArgs } from "./provider/promoted-artifact";
export { SysextRelease, SysextReleaseArgs } from "./provider/sysext-release";
export { ExtensionCatalog, ExtensionCatalogArgs } from "./provider/extension-catalog";
export { OsRelease, OsReleaseArgs } from "./provider/os-release";
export { PromotedRelease, PromotedReleaseArgs } from "./provider/promoted-release";
export * from "./constructs";
