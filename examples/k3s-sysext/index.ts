// The seed workflow as a Pulumi program: Secure Boot keys, k3s packaged as a signed system extension
// from this folder's Dockerfile. Put the k3s release binary in this folder as `k3s` first (the blog's
// Dockerfile downloads it; see the Dockerfile's header). Who builds the Dockerfile:
// - BuildKit (the default where no Docker daemon is configured): a buildkitd at $BUILDKIT_HOST, or
//   `pulumi config set buildkitHost tcp://buildkitd.example.com:1234` (with mTLS: buildkitTls);
// - Docker (`pulumi config set builder docker` or a configured daemon): @pulumi/docker builds and pushes
//   to `imageName`.
// With `pulumi config set prebuiltImageArchive k3s-sysext.tar` (a `docker save` of the image built
// elsewhere) it needs neither.
import * as pulumi from "@pulumi/pulumi";
import { SigningKeys, SystemExtension } from "../../index";
import { DockerfileBuilder, SysextFromDockerfile, dockerDaemonConfigured } from "../../constructs/sysext-from-dockerfile"; // pulumi-kairos/docker

const config = new pulumi.Config();
const prebuilt = config.get("prebuiltImageArchive");
const builder = (config.get("builder") ?? (dockerDaemonConfigured() ? "docker" : "buildkit")) as DockerfileBuilder;

const keys = new SigningKeys("keys", { name: config.get("keyName") ?? "my-kairos", outputDir: "keys" }, { protect: true });

const k3s = prebuilt
    ? new SystemExtension("k3s", { name: "k3s", outputDir: "extensions", source: { dockerArchive: prebuilt }, signingKeys: keys })
    : new SysextFromDockerfile("k3s", {
          builder,
          context: __dirname,
          outputDir: "extensions",
          extensionName: "k3s",
          signingKeys: keys,
          ...(builder === "docker"
              ? { imageName: config.require("imageName") } // e.g. registry.example.com/acme/k3s-sysext:v1.31.2
              : { buildkitHost: config.get("buildkitHost") }),
      });

export const k3sExtension = { path: k3s.path, sha256: k3s.sha256, rootHash: k3s.rootHash };
export const dbCertificateFingerprint = keys.certificates.apply((c) => c.db.sha256Fingerprint);
