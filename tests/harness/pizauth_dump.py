"""The bytes `pizauth dump` writes, made as pizauth's source makes them
(pizauth cannot be run here: it is not in Debian, and building it needs the
crates registry).

Followed, in ltratt/pizauth:
- src/server/state.rs, PizauthState::dump (commit 8d38f95, pizauth 1.1.0;
  the same since 52ae042, pizauth 0.2.2): a random 12-byte nonce, then
  ChaCha20Poly1305::encrypt(nonce, plaintext) (ciphertext with the 16-byte
  tag appended), key CHACHA20_KEY, no associated data;
- src/server/state.rs, LockedState::dump: serialize(&Dump { version:
  DUMP_VERSION (1), accounts }) with one entry per configured account,
  (Account::dump(), TokenState::dump());
- src/config.rs, struct AccountDump; src/server/state.rs, enum
  TokenStateDump (Empty | Active { access_token, access_token_obtained,
  access_token_expiry, refresh_token }).

The serialiser was bincode 1.3 (`bincode::serialize`, pizauth 0.2.2 to
1.0.7), bincode 2.0 with `config::legacy()` (1.0.8 to 1.0.11; commit
d851125), wincode 0.5.3 with its default config (1.1.0; commit 8794655,
"for our purposes, wincode is binary compatible").  Each rule below holds
for all three: fixed-width little-endian integers; u64 lengths (bincode's
legacy length, wincode's BincodeLen); Option as a u8 tag (serde's
serialize_none/some in bincode, wincode's `impl SchemaWrite for Option`);
enum variants as a u32 index (bincode's variant_index, wincode-derive's
default TagEncoding u32); SystemTime as u64 seconds then u32 nanoseconds
(serde's `impl Serialize for SystemTime` struct, wincode's SystemTime as a
Duration)."""

import os
import random
import struct
import time

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

# CHACHA20_KEY, src/server/state.rs.
KEY = bytes.fromhex('66a247a85e48cfecaaed9b36eba97d5350d4286375097a44eeffb9c4546b65a3')
NONCE_LEN = 12
DUMP_VERSION = 1


def u8(v):
    return struct.pack('<B', v)


def u32(v):
    return struct.pack('<I', v)


def u64(v):
    return struct.pack('<Q', v)


def string(s):
    b = s.encode('utf-8')
    return u64(len(b)) + b


def option(v, write):
    return u8(0) if v is None else u8(1) + write(v)


def system_time(t):
    secs = int(t)
    nanos = int(round((t - secs) * 1e9)) % 1000000000
    return u64(secs) + u32(nanos)


def account_dump(auth_uri, client_id, token_uri, client_secret=None,
                 redirect_uri='http://localhost/', scopes=(), auth_uri_fields=()):
    """AccountDump's fields in declaration order (src/config.rs)."""
    return (string(auth_uri)
            + u64(len(auth_uri_fields))
            + b''.join(string(k) + string(v) for k, v in auth_uri_fields)
            + string(client_id)
            + option(client_secret, string)
            + string(redirect_uri)
            + u64(len(scopes)) + b''.join(string(s) for s in scopes)
            + string(token_uri))


def token_state_empty():
    """TokenStateDump::Empty (also what Pending dumps as)."""
    return u32(0)


def token_state_active(access_token, refresh_token, expires_in=3600, now=None):
    """TokenStateDump::Active; dump_instant turns the Instants into
    SystemTimes around now."""
    now = time.time() if now is None else now
    return (u32(1) + string(access_token) + system_time(now)
            + system_time(now + expires_in) + option(refresh_token, string))


def plaintext(accounts, version=DUMP_VERSION):
    """accounts: {name: (account_dump bytes, token state bytes)}; a Rust
    HashMap is written in no particular order."""
    items = list(accounts.items())
    random.shuffle(items)
    return (u64(version) + u64(len(items))
            + b''.join(string(name) + act + ts for name, (act, ts) in items))


def seal(plain, key=KEY):
    nonce = os.urandom(NONCE_LEN)
    return nonce + ChaCha20Poly1305(key).encrypt(nonce, plain, None)


def dump(accounts, version=DUMP_VERSION):
    return seal(plaintext(accounts, version))
