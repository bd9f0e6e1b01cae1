// The seed workflow as a Pulumi program: Secure Boot keys, k3s packaged as a signed system
// extension. Building the Dockerfile needs Docker and the network; with
// `pulumi config set prebuiltImageArchive k3s-sysext.tar` (a `docker save` of the image built
// elsewhere) it needs neither.
import * as pulumi from "@pulumi/pulumi";
import { SigningKeys, SystemExtension } from "../../index";
import { SysextFromDockerfile } from "../../constructs/sysext-from-dockerfile"; // pulumi-kairos/docker

const config = new pulumi.Config();
const prebuilt = config.get("prebuiltImageArchive");

const keys = new SigningKeys("keys", { name: config.get("keyName") ?? "my-kairos", outputDir: "keys" }, { protect: true });

const k3s = prebuilt
    ? new SystemExtension("k3s", { name: "k3s", outputDir: "extensions", source: { dockerArchive: prebuilt }, signingKeys: keys })
    : new SysextFromDockerfile("k3s", {
          context: __dirname,
          imageName: config.require("imageName"), // e.g. registry.example.com/acme/k3s-sysext:v1.31.2
          outputDir: "extensions",
          extensionName: "k3s",
          signingKeys: keys,
      });

export const k3sExtension = { path: k3s.path, sha256: k3s.sha256, rootHash: k3s.rootHash };
export const dbCertificateFingerprint = keys.certificates.apply((c) => c.db.sha256Fingerprint);
