// Resource handlers called as the dynamic-provider process calls them: check (which must find no
// problem), then create; returns the outputs.
import { strict as assert } from "assert";
import { Handler } from "../../provider/artifact-contract";

export async function createVia(handler: Handler, news: Record<string, unknown>): Promise<any> {
    const { inputs, failures } = await handler.check({}, news);
    assert.deepEqual(failures ?? [], [], JSON.stringify(failures));
    return (await handler.create(inputs)).outs;
}
