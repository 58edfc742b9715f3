// Module hook for bigstore.mjs: rewrites one constant in
// oidc-provider/lib/adapters/memory_adapter.js as it is loaded.
const TARGET = '/oidc-provider/lib/adapters/memory_adapter.js';
const FROM = 'new LRU({ maxSize: 1000 })';
const TO = 'new LRU({ maxSize: 50000000 })';

export async function load(url, context, nextLoad) {
  const result = await nextLoad(url, context);
  if (!url.endsWith(TARGET)) return result;
  const source = String(result.source);
  if (!source.includes(FROM)) {
    throw new Error(`bench/lib/bigstore-hooks.mjs: "${FROM}" not found in ${url}; update it`);
  }
  return { ...result, source: source.replace(FROM, TO) };
}
