// The dynamic-provider transport: the handlers (handlers.ts) served as Pulumi dynamic providers, the
// plugin's twin (plugin.ts). Pulumi serialises each resource's provider object into the state and
// replays it in a separate process (for refresh and destroy: the one the old state holds), maybe on
// another machine, in another folder, with a newer pulumi-kairos. So the provider we hand to Pulumi
// captures two strings, the package name and the resource token, and finds the handler at call time
// in the pulumi-kairos the Pulumi project has installed (see handlers.ts for old state).
import type * as pulumi from "@pulumi/pulumi";
import type { Handler } from "./artifact-contract";

/**
 * Development override of the handler module (a .ts file runs through ts-node; a relative path means
 * the project folder): the repo's tests and demo set it so the provider process runs the source they
 * test. Users never need it.
 */
export const HANDLERS_MODULE_ENV = "PULUMI_KAIROS_HANDLERS";

/**
 * The provider for one resource type. Its serialised form names the package and the token only; the
 * handler is `require("pulumi-kairos/handlers").handlerFor(token)`, resolved from the provider process's
 * working directory, which Pulumi sets to the project folder.
 */
export function packageProvider(token: string): pulumi.dynamic.ResourceProvider {
    // One object per token: Pulumi caches a provider's serialised form by object identity, and
    // serialising (a closure walk through the inspector) is the main per-resource cost of a no-op up.
    let provider = providers.get(token);
    if (!provider) providers.set(token, (provider = makePackageProvider(token)));
    return provider;
}

const providers = new Map<string, pulumi.dynamic.ResourceProvider>();

function makePackageProvider(token: string): pulumi.dynamic.ResourceProvider {
    const load = (): Handler => {
        const override = process.env.PULUMI_KAIROS_HANDLERS;
        let entry: string;
        if (override) {
            entry = require("path").resolve(override);
        } else {
            try {
                entry = require.resolve("pulumi-kairos/handlers", { paths: [process.cwd()] });
            } catch (e) {
                throw new Error(
                    `${token}: this stack's state is served by the npm package pulumi-kairos, which is not installed for the Pulumi project in ${process.cwd()}. ` +
                        `Run \`npm install pulumi-kairos\` there (${(e as Error).message.split("\n")[0]})`,
                );
            }
        }
        if (entry.endsWith(".ts")) {
            const flag = Symbol.for("pulumi-kairos.ts-node");
            const g = globalThis as any;
            if (!g[flag]) {
                const tsNode = require(require.resolve("ts-node", { paths: [entry] }));
                tsNode.register({ transpileOnly: true, skipProject: true, compilerOptions: { module: "commonjs", target: "es2022", esModuleInterop: true } });
                g[flag] = true;
            }
        }
        return require(entry).handlerFor(token);
    };
    return {
        check: (olds, news) => load().check(olds, news),
        diff: (id, olds, news) => load().diff(id, olds, news),
        create: (inputs) => load().create(inputs),
        read: (id, props) => load().read(id, props),
        update: (id, olds, news) => load().update(id, olds, news),
        delete: (id, props) => load().delete(id, props),
    };
}

/**
 * Lowers Error.stackTraceLimit to 0 for a resource's registration and returns what puts it back. Pulumi
 * gives the promise of every output property a formatted stack trace (runtime/debuggable.js) that only
 * its promise-leak report reads; under ts-node each is mapped through source maps (about 1 ms), and each
 * resource here registers twenty-odd outputs, so registering 50 extensions took 2 s instead of 0.2 s.
 * The resource's source position is kept: Resource.callsites raises the limit for its own trace.
 */
export function withoutPromiseStackTraces(): () => void {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    return () => {
        Error.stackTraceLimit = limit;
    };
}
