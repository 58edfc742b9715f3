// Loaded into the test authorization server with
//   NODE_OPTIONS=--import=file:///.../bench/lib/bigstore.mjs
// Raises the entry cap of oidc-provider's in-memory store (an LRU of 1000
// entries, see bench/README.md) so that the thousands of grants the
// benchmark holds at once are not evicted.  Nothing else changes.
import { register } from 'node:module';

register('./bigstore-hooks.mjs', import.meta.url);
