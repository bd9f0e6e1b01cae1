// Public entry point of pulumi-kairos.
export { SigningKeys, SigningKeysArgs } from "./provider/signing-keys";
export { SystemExtension, SystemExtensionArgs } from "./provider/system-extension";
