// Types of bin/compile-runtime.mjs for the TypeScript that imports it (bench/processing-thread.ts).
export function compiledRuntime(options?: { cacheRoot?: string }): Promise<string>;
export function compiledCopy(options?: { cacheRoot?: string; folders?: string[] }): Promise<string>;
