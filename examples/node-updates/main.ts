// `pulumi up` entry point: the settings come from stack config, e.g.
//   pulumi config set registry registry.example.com
//   pulumi config set --path 'k3s[0].version' 1.31.2 && pulumi config set --path 'k3s[0].tree' build/k3s-1.31.2
//   pulumi config set --path os.dir build/rootfs && pulumi config set --path os.version 1
//   pulumi config set cloudConfig cloud-config.yaml
import * as pulumi from "@pulumi/pulumi";
import { nodeUpdatesProgram, NodeUpdatesSettings } from "./index";

const config = new pulumi.Config();
export = nodeUpdatesProgram({
    outDir: config.get("outDir") ?? "out",
    registry: config.require("registry"),
    plainHttp: config.getBoolean("plainHttp"),
    k3s: config.requireObject<NodeUpdatesSettings["k3s"]>("k3s"),
    installVersion: config.get("installVersion"),
    os: config.requireObject<NodeUpdatesSettings["os"]>("os"),
    cloudConfig: config.require("cloudConfig"),
});
