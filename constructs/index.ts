// Component resources that compose the build resources; they never spawn processes themselves.
// The constructs around @pulumi/docker, @pulumi/command and @pulumi/aws are not re-exported here, so
// `import ... from "pulumi-kairos"` loads none of those packages: they are the subpaths
// pulumi-kairos/docker (SysextFromDockerfile; needs @pulumi/docker and @pulumi/command),
// pulumi-kairos/command (AuroraBootBuild) and
// pulumi-kairos/aws (S3Release), with their packages as optional peer dependencies.
export * from "./trusted-boot-image";
export * from "./promotion";
export * from "./auroraboot-commands";
