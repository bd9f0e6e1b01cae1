// Component resources that compose the build resources; they never spawn processes themselves.
export * from "./trusted-boot-image";
export * from "./promotion";
export * from "./sysext-from-dockerfile";
export * from "./auroraboot-build";
export * from "./s3-release";
