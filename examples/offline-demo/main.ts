// Entry point for `pulumi up` with a full Pulumi installation (Pulumi.yaml at the repo root points
// here). `npm run demo` runs the same program through the Automation API instead.
import * as path from "path";
import { demoProgram } from "./index";

export = demoProgram(path.resolve(__dirname, "..", "..", "out", "demo"));
