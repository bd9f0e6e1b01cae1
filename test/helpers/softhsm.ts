// A SoftHSM2 token of the test's own: a temp token folder and config (SOFTHSM2_CONF), initialised with a
// known PIN, reached through p11-kit's proxy as a user's HSM would be. Keys are imported from files (so
// the same key can sign from a file and from the token) or generated inside it.
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { PIN_ENV } from "../../provider/toolkit/keys/pkcs11";

export const SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so";

export interface TestToken {
    label: string;
    pin: string;
    dir: string;
    /** A URI for the object labelled `object` in this token. */
    uri(object: string): string;
    /** Imports an RSA private key file (PEM) under `object` with `id` (hex). */
    importKey(keyFile: string, object: string, id: string): Promise<string>;
    /** The environment the provider needs: SOFTHSM2_CONF and the PIN. */
    env(): Record<string, string>;
}

/** Creates and initialises a token in `dir`, and points this process at it (SOFTHSM2_CONF, the PIN). */
export async function makeTestToken(dir: string, label = "kairos-test", pin = "1234"): Promise<TestToken> {
    fs.mkdirSync(path.join(dir, "tokens"), { recursive: true });
    const conf = path.join(dir, "softhsm2.conf");
    fs.writeFileSync(conf, `directories.tokendir = ${path.join(dir, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    const env = { SOFTHSM2_CONF: conf };
    await run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", "5678"], { env });
    const token: TestToken = {
        label, pin, dir,
        uri: (object) => `pkcs11:token=${label};object=${object}`,
        async importKey(keyFile, object, id) {
            const pk8 = path.join(dir, `${object}.pk8`);
            await run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", keyFile, "-out", pk8], { env: { OPENSSL_CONF: "/dev/null" } });
            try {
                await run(["softhsm2-util", "--import", pk8, "--token", label, "--label", object, "--id", id, "--pin", pin], { env });
            } finally {
                fs.rmSync(pk8, { force: true });
            }
            return token.uri(object);
        },
        env: () => ({ ...env, [PIN_ENV]: pin }),
    };
    Object.assign(process.env, token.env());
    return token;
}
