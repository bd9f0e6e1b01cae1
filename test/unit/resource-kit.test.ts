import * as assert from "assert";
import * as path from "path";
import { replacedFields } from "../../provider/check-kit";
import { UNKNOWN } from "../../provider/validation/schema-validator";

describe("replacedFields", () => {
    it("lists known fields that changed, comparing paths resolved", () => {
        const olds = { name: "a", outputDir: path.resolve("out") };
        assert.deepStrictEqual(replacedFields(olds, { name: "a", outputDir: "out" }, ["name", "outputDir"], ["outputDir"]), []);
        assert.deepStrictEqual(replacedFields(olds, { name: "b", outputDir: "elsewhere" }, ["name", "outputDir"], ["outputDir"]), ["name", "outputDir"]);
    });

    it("never lists a field that is still unknown in a preview", () => {
        assert.deepStrictEqual(replacedFields({ outputDir: "/x" }, { outputDir: UNKNOWN }, ["outputDir"], ["outputDir"]), []);
    });
});
