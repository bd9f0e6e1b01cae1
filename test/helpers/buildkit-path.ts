// Puts the set-up's buildctl/buildkitd (.buildkit-bin) first on PATH, as scripts/run-tests.sh does, so a
// test run on its own finds them. Imported for its side effect.
import { useBuildkitFromSetup } from "../../scripts/lib/buildkit";

useBuildkitFromSetup();
