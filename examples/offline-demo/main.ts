// Entry point for `pulumi up` with a full Pulumi installation (Pulumi.yaml at the repo root points
// here); it expects the test OS that `npm run demo` writes to out/demo/test-os.
import * as path from "path";
import { demoProgram } from "./index";

const out = path.resolve(__dirname, "..", "..", "out", "demo");
export = demoProgram(out, path.join(out, "test-os"));
