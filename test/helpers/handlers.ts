// Resource handlers called as the dynamic-provider process calls them: check (which must find no
// problem), then create; returns the outputs.
import { strict as assert } from "assert";
import { Handler } from "../../provider/artifact-contract";

/** The handler's check, which must find no problem; returns the checked inputs. */
export async function checkVia(handler: Handler, news: Record<string, unknown>): Promise<any> {
    const { inputs, failures } = await handler.check({}, news);
    assert.deepEqual(failures ?? [], [], JSON.stringify(failures));
    return inputs;
}

export async function createVia(handler: Handler, news: Record<string, unknown>): Promise<any> {
    return (await handler.create(await checkVia(handler, news))).outs;
}
