// Reading a key folder made by auroraboot genkey's recipe: what SigningKeys adopts on `pulumi import`.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { authTimestampOf, readExistingKeySet } from "../../../provider/toolkit/keys/key-set-reader";
import { makeGenkeyFolder } from "../../helpers/genkey";
import { tempDir } from "../../helpers/temp";

describe("reading an existing key set (genkey layout)", function () {
    this.timeout(120000);
    let dir: string;

    before(async () => {
        dir = path.join(tempDir("genkey"), "keys");
        await makeGenkeyFolder(dir, "Acme Legacy", { days: 1000, timestamp: "2026-11-30 10:00:00" });
    });

    it("recovers the name, key size, validity, owner GUID, timestamp and the extra lists genkey appends", () => {
        const set = readExistingKeySet(dir);
        assert.equal(set.name, "Acme Legacy");
        assert.equal(set.keySize, 2048);
        assert.equal(set.validityDays, 1000);
        assert.equal(set.summary.authTimestamp, "2026-11-30T10:00:00Z");
        assert.match(set.summary.ownerGuid, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        assert.deepEqual(set.extraLists, { KEK: 1, db: 1 });
        assert.match(set.summary.signatureLists.KEK[1], /Stand-in Microsoft Corporation KEK CA 2011 \(owner 77fa9abd-0359-4d32-bd60-28f4e78f784b\)/);
        assert.equal(authTimestampOf(fs.readFileSync(path.join(dir, "db.auth"))), "2026-11-30T10:00:00Z");
    });

    it("refuses a folder with files missing, naming them", () => {
        const partial = path.join(tempDir("genkey-partial"), "keys");
        fs.cpSync(dir, partial, { recursive: true });
        fs.rmSync(path.join(partial, "KEK.auth"));
        fs.rmSync(path.join(partial, "tpm2-pcr-private.pem"));
        assert.throws(() => readExistingKeySet(partial), /is not a complete key set: KEK\.auth, tpm2-pcr-private\.pem missing/);
    });

    it("lists every inconsistency at once: a swapped key, an .auth that does not carry its .esl", () => {
        const broken = path.join(tempDir("genkey-broken"), "keys");
        fs.cpSync(dir, broken, { recursive: true });
        fs.copyFileSync(path.join(dir, "KEK.key"), path.join(broken, "db.key"));
        fs.copyFileSync(path.join(dir, "KEK.auth"), path.join(broken, "db.auth"));
        assert.throws(() => readExistingKeySet(broken), (e: Error) => /db\.key does not match db\.pem/.test(e.message) && /db\.auth does not carry db\.esl/.test(e.message));
    });
});
