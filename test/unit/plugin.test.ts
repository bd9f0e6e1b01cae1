// The plugin transport's own logic: which handler a URN names, and where the engine is.
import { strict as assert } from "assert";
import { engineAddress, kairosProvider, tokenOfUrn } from "../../provider/plugin";
import { loadPackageSchema } from "../../provider/validation/schema-validator";

describe("pulumi-resource-kairos", () => {
    it("finds the resource token in a URN, also under a parent component", () => {
        assert.equal(tokenOfUrn("urn:pulumi:dev::seed::kairos:index:SigningKeys::keys"), "kairos:index:SigningKeys");
        assert.equal(tokenOfUrn("urn:pulumi:dev::seed::kairos:index:TrustedBootImage$kairos:index:BootMedia::edge-media"), "kairos:index:BootMedia");
        assert.throws(() => tokenOfUrn("keys"), /not a resource URN: keys/);
    });

    it("takes the engine address from the last non-flag argument", () => {
        assert.equal(engineAddress(["--logtostderr", "-v=9", "127.0.0.1:41234"]), "127.0.0.1:41234");
        assert.equal(engineAddress(["--logflow"]), undefined);
    });

    it("serves schema.json and its version, and refuses a token it does not know", async () => {
        const p = kairosProvider();
        assert.equal(p.version, loadPackageSchema().version);
        assert.equal(JSON.parse(p.schema!).name, "kairos");
        await assert.rejects(p.check!("urn:pulumi:dev::seed::kairos:index:Nope::x", {}, {}), /no resource type kairos:index:Nope/);
    });
});
