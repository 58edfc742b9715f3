/* pizauth's `pizauth dump` output, read as pizauth's own `restore` reads it
 * (pizauth src/server/state.rs, PizauthState::dump/restore and
 * LockedState::dump/restore; src/config.rs, AccountDump):
 *
 *   12-byte random nonce | ChaCha20-Poly1305 (RFC 8439) ciphertext | tag
 *
 * under the 32-byte key built into pizauth (CHACHA20_KEY), no associated
 * data.  The plaintext is
 *
 *   Dump { version: u64, accounts: HashMap<String, (AccountDump,
 *                                                   TokenStateDump)> }
 *   AccountDump { auth_uri: String, auth_uri_fields: Vec<(String, String)>,
 *                 client_id: String, client_secret: Option<String>,
 *                 redirect_uri: String, scopes: Vec<String>,
 *                 token_uri: String }
 *   enum TokenStateDump { Empty, Active { access_token: String,
 *       access_token_obtained: SystemTime, access_token_expiry: SystemTime,
 *       refresh_token: Option<String> } }
 *
 * unchanged, with DUMP_VERSION 1, from pizauth 0.2.2 (where dump/restore
 * appeared) to 1.1.0.  Three serialisers have written it: bincode 1.3
 * (`bincode::serialize`, pizauth 0.2.2 to 1.0.7), bincode 2.0 with
 * `config::legacy()` (1.0.8 to 1.0.11) and wincode 0.5 with its default
 * configuration (1.1.0).  For these types all three write the same bytes:
 * integers little-endian at their full width, a sequence, map or string as
 * a u64 count then its items (strings as UTF-8), an Option as a u8 0 or 1
 * then the value, an enum as a u32 variant index then its fields, a tuple or
 * struct as its fields in order, a SystemTime as u64 seconds and u32
 * nanoseconds since the epoch.  So one layout is read, strictly: every
 * count is checked against what is left, every tag and string validated,
 * nothing may follow the map.  A dump of another layout fails the check
 * rather than being half read. */

#include <limits.h>
#include <string.h>
#include <openssl/evp.h>

#include "tokend/import.h"

#define PIZAUTH_NONCE 12
#define PIZAUTH_TAG 16
#define PIZAUTH_DUMP_VERSION 1
#define PIZAUTH_TOKEN_MAX 16384
#define NANOS_PER_SEC 1000000000u
#define NAMES_SHOWN 8

/* CHACHA20_KEY in pizauth's src/server/state.rs: the same in every release. */
static const guint8 pizauth_key[32] = {
    0x66, 0xa2, 0x47, 0xa8, 0x5e, 0x48, 0xcf, 0xec, 0xaa, 0xed, 0x9b, 0x36, 0xeb, 0xa9, 0x7d, 0x53,
    0x50, 0xd4, 0x28, 0x63, 0x75, 0x09, 0x7a, 0x44, 0xee, 0xff, 0xb9, 0xc4, 0x54, 0x6b, 0x65, 0xa3,
};

SecStr *import_pizauth_open(const guint8 *dump, size_t len, struct tokend_error *e)
{
    EVP_CIPHER_CTX *ctx;
    g_autoptr(SecStr) out = NULL;
    size_t ct_len;
    int n = 0, m = 0;
    bool ok;

    if (len < PIZAUTH_NONCE + PIZAUTH_TAG || len > INT_MAX) {
        error_set(e, TOKEND_EX_DATAERR, "the file is not a pizauth dump (%zu bytes)", len);
        return NULL;
    }
    ct_len = len - PIZAUTH_NONCE - PIZAUTH_TAG;
    out = secstr_new(ct_len + 1);
    ctx = EVP_CIPHER_CTX_new();
    ok = ctx && EVP_DecryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, NULL, NULL) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, PIZAUTH_NONCE, NULL) == 1 &&
         EVP_DecryptInit_ex(ctx, NULL, NULL, pizauth_key, dump) == 1 &&
         EVP_DecryptUpdate(ctx, (unsigned char *)out->data, &n, dump + PIZAUTH_NONCE,
                           (int)ct_len) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, PIZAUTH_TAG,
                             (void *)(dump + len - PIZAUTH_TAG)) == 1 &&
         EVP_DecryptFinal_ex(ctx, (unsigned char *)out->data + n, &m) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok || (size_t)n + (size_t)m != ct_len) {
        error_set(e, TOKEND_EX_DATAERR,
                  "the file is not a pizauth dump: it does not decrypt "
                  "under pizauth's dump key (or was changed)");
        return NULL;
    }
    out->len = ct_len;
    out->data[ct_len] = '\0';
    return g_steal_pointer(&out);
}

/* The reading position in the plaintext; *err says what broke first. */
struct cursor {
    const guint8 *p;
    size_t left, size;
    const char *err;
};

struct piece {
    const char *s;
    size_t len;
};

static bool bad(struct cursor *c, const char *what)
{
    if (!c->err)
        c->err = what;
    return false;
}

static bool take(struct cursor *c, size_t n, const guint8 **at)
{
    if (c->err || n > c->left)
        return bad(c, "it ends inside a field");
    *at = c->p;
    c->p += n;
    c->left -= n;
    return true;
}

static bool read_u64(struct cursor *c, guint64 *v)
{
    const guint8 *b;

    if (!take(c, 8, &b))
        return false;
    *v = 0;
    for (int i = 7; i >= 0; i--)
        *v = *v << 8 | b[i];
    return true;
}

static bool read_u32(struct cursor *c, guint32 *v)
{
    const guint8 *b;

    if (!take(c, 4, &b))
        return false;
    *v = (guint32)b[0] | (guint32)b[1] << 8 | (guint32)b[2] << 16 | (guint32)b[3] << 24;
    return true;
}

/* Option and enum tags: only the values the writers write. */
static bool read_tag(struct cursor *c, bool wide, guint32 *v)
{
    const guint8 *b;

    if (wide ? !read_u32(c, v) : !take(c, 1, &b))
        return false;
    if (!wide)
        *v = b[0];
    return *v <= 1 || bad(c, wide ? "an unknown token state" : "an Option tag is not 0 or 1");
}

/* A count of items each at least min_item bytes long: never more than fit. */
static bool read_count(struct cursor *c, size_t min_item, guint64 *n)
{
    if (!read_u64(c, n))
        return false;
    return *n <= c->left / min_item || bad(c, "a count is larger than the data");
}

static bool read_str(struct cursor *c, struct piece *out)
{
    guint64 n;
    const guint8 *b = NULL;

    if (!read_count(c, 1, &n) || !take(c, (size_t)n, &b))
        return false;
    out->s = (const char *)b;
    out->len = (size_t)n;
    return g_utf8_validate_len(out->s, out->len, NULL) || bad(c, "a string is not UTF-8");
}

static bool read_opt_str(struct cursor *c, struct piece *out)
{
    guint32 tag;

    out->s = NULL;
    out->len = 0;
    return read_tag(c, false, &tag) && (tag == 0 || read_str(c, out));
}

static bool read_strs(struct cursor *c, guint64 per_item)
{
    guint64 n;
    struct piece ignored;

    if (!read_count(c, 8 * per_item, &n))
        return false;
    for (guint64 i = 0; i < n * per_item; i++)
        if (!read_str(c, &ignored))
            return false;
    return true;
}

static bool read_time(struct cursor *c)
{
    guint64 secs;
    guint32 nanos;

    return read_u64(c, &secs) && read_u32(c, &nanos) &&
           (nanos < NANOS_PER_SEC || bad(c, "a time has more than a second of nanoseconds"));
}

/* AccountDump; only client_id is kept. */
static bool read_account(struct cursor *c, struct piece *client_id)
{
    struct piece s;

    return read_str(c, &s) &&        /* auth_uri */
           read_strs(c, 2) &&        /* auth_uri_fields */
           read_str(c, client_id) && /* client_id */
           read_opt_str(c, &s) &&    /* client_secret */
           read_str(c, &s) &&        /* redirect_uri */
           read_strs(c, 1) &&        /* scopes */
           read_str(c, &s);          /* token_uri */
}

/* TokenStateDump; *rt is the refresh token (s NULL when none). */
static bool read_token_state(struct cursor *c, bool *active, struct piece *rt)
{
    guint32 variant;
    struct piece access;

    rt->s = NULL;
    if (!read_tag(c, true, &variant))
        return false;
    *active = variant == 1;
    return !*active ||
           (read_str(c, &access) && read_time(c) && read_time(c) && read_opt_str(c, rt));
}

struct pizauth_account {
    bool found, active;
    struct piece client_id, refresh_token;
    GString *names;
    guint64 count;
};

static bool read_entry(struct cursor *c, const char *account, struct pizauth_account *want)
{
    struct piece name, client_id, rt;
    bool active;

    if (!read_str(c, &name) || !read_account(c, &client_id) || !read_token_state(c, &active, &rt))
        return false;
    if (want->count++ < NAMES_SHOWN)
        g_string_append_printf(want->names, "%s%.*s", want->names->len ? ", " : "",
                               (int)MIN(name.len, 64), name.s);
    if (!name.s || name.len != strlen(account) || memcmp(name.s, account, name.len) != 0)
        return true;
    if (want->found)
        return bad(c, "an account is in it twice");
    want->found = true;
    want->active = active;
    want->client_id = client_id;
    want->refresh_token = rt;
    return true;
}

static int read_dump(struct cursor *c, const char *account, struct pizauth_account *want,
                     struct tokend_error *e)
{
    guint64 version, n;

    if (!read_u64(c, &version))
        return error_set(e, TOKEND_EX_DATAERR, "the dump is empty");
    if (version != PIZAUTH_DUMP_VERSION)
        return error_set(e, TOKEND_EX_DATAERR,
                         "the dump is of version %" G_GUINT64_FORMAT
                         "; tokend reads version 1 (pizauth 0.2.2 to 1.1.0)",
                         version);
    /* The smallest entry: empty name and strings, None, no fields, Empty. */
    if (read_count(c, 8 + 8 + 8 + 8 + 1 + 8 + 8 + 8 + 4, &n))
        for (guint64 i = 0; i < n; i++)
            if (!read_entry(c, account, want))
                break;
    if (!c->err && c->left)
        bad(c, "bytes follow the last account");
    if (c->err)
        return error_set(e, TOKEND_EX_DATAERR,
                         "the dump does not have the layout of pizauth's "
                         "dump version 1: %s (byte %zu)",
                         c->err, c->size - c->left);
    return 0;
}

static SecStr *pizauth_token(const struct pizauth_account *want, const char *account,
                             char **client_id, struct tokend_error *e)
{
    const struct piece *rt = &want->refresh_token;

    if (!want->found) {
        error_set(e, TOKEND_EX_DATAERR, "the dump has no account %s (it has: %s%s)", account,
                  want->count ? want->names->str : "none",
                  want->count > NAMES_SHOWN ? ", ..." : "");
        error_set_hint(e, "name pizauth's account with --pizauth-account NAME");
        return NULL;
    }
    if (!want->active || !rt->s) {
        error_set(e, TOKEND_EX_DATAERR, "pizauth held no %s for account %s when it dumped",
                  want->active ? "refresh token" : "token", account);
        error_set_hint(e, "sign in with tokend obtain instead");
        return NULL;
    }
    for (size_t i = 0; i < rt->len; i++)
        if ((unsigned char)rt->s[i] < 0x20 || (unsigned char)rt->s[i] > 0x7e) {
            error_set(e, TOKEND_EX_DATAERR, "account %s's refresh token is not a token", account);
            return NULL;
        }
    if (rt->len == 0 || rt->len > PIZAUTH_TOKEN_MAX) {
        error_set(e, TOKEND_EX_DATAERR, "account %s's refresh token is not a token", account);
        return NULL;
    }
    *client_id = want->client_id.len ? g_strndup(want->client_id.s, want->client_id.len) : NULL;
    return secstr_from(rt->s, rt->len);
}

SecStr *import_parse_pizauth(const guint8 *plain, size_t len, const char *account, char **client_id,
                             struct tokend_error *e)
{
    struct cursor c = {.p = plain, .left = len, .size = len};
    struct pizauth_account want = {.names = g_string_new(NULL)};
    SecStr *out = NULL;

    *client_id = NULL;
    if (read_dump(&c, account, &want, e) == 0)
        out = pizauth_token(&want, account, client_id, e);
    g_string_free(want.names, TRUE);
    return out;
}
