// Entry point for `pulumi up` with a full Pulumi installation (Pulumi.yaml at the repo root points
// here); it expects the test OS that `npm run demo` writes to out/demo/test-os, and a buildkitd at
// BUILDKIT_HOST that can pull debian:bookworm (the k3s extension's Dockerfile). The project folder is
// the repo root, so the paths are relative to it (index.ts says why).
import * as path from "path";
import { demoProgram } from "./index";

export = demoProgram(path.join("out", "demo"), path.join("out", "demo", "test-os"), path.resolve(__dirname, "..", ".."));
