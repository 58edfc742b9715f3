/* email-oauth2-proxy's tokens (emailproxy.py, class Cryptographer): each
 * account's section holds token_salt (base64), token_iterations and the
 * tokens as Fernet tokens under the key
 *   urlsafe_b64encode(PBKDF2HMAC(SHA256, length=32, salt, iterations)
 *                     .derive(password.encode('utf-8')))
 * where password is the one the proxy's mail clients log in with.  A
 * Fernet token (https://github.com/fernet/spec) is base64url of
 *   0x80 | 8-byte time | 16-byte IV | AES-128-CBC ciphertext | HMAC-SHA256
 * with the key's first 16 bytes signing and the last 16 encrypting. */

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tokend/import.h"

/* Cryptographer.LEGACY_ITERATIONS: sections written before token_iterations. */
#define PROXY_LEGACY_ITERATIONS 100000
/* The proxy's own count is 1200000; a file may say anything, and each
 * round is work done before the password can be judged: ten million take
 * a few seconds. */
#define PROXY_MAX_ITERATIONS 10000000
#define FERNET_VERSION 0x80
#define FERNET_HEAD (1 + 8 + 16)
#define FERNET_MAC 32
#define FERNET_MAX 65536

void proxy_entry_free(ProxyEntry *p)
{
    if (!p)
        return;
    g_free(p->section);
    g_free(p->refresh_token);
    g_free(p->salt);
    g_free(p->client_id);
    g_free(p);
}

static bool has_refresh_token(GKeyFile *kf, const char *group)
{
    g_autofree char *v = g_key_file_get_value(kf, group, "refresh_token", NULL);

    return v && *v;
}

/* The section named after the account (configparser's names are
 * case-sensitive; the proxy looks accounts up as the client spells them),
 * else the only one with a refresh token. */
static char *pick_section(GKeyFile *kf, const char *username, struct tokend_error *e)
{
    g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);
    const char *only = NULL;
    int n = 0;

    if (username && g_key_file_has_group(kf, username))
        return g_strdup(username);
    for (char **g = groups; *g; g++) {
        if (username && g_ascii_strcasecmp(*g, username) == 0)
            return g_strdup(*g);
        if (has_refresh_token(kf, *g) && n++ == 0)
            only = *g;
    }
    if (n == 1 && !username)
        return g_strdup(only);
    if (username)
        error_set(e, TOKEND_EX_DATAERR, "no [%s] section", username);
    else
        error_set(e, TOKEND_EX_DATAERR, "%s; set username in the account to pick one",
                  n ? "several sections hold a refresh_token"
                    : "no section holds a "
                      "refresh_token");
    return NULL;
}

static int read_entry(GKeyFile *kf, ProxyEntry *p, struct tokend_error *e)
{
    g_autofree char *salt = g_key_file_get_value(kf, p->section, "token_salt", NULL);
    g_autofree char *iter = g_key_file_get_value(kf, p->section, "token_iterations", NULL);

    p->refresh_token = g_key_file_get_value(kf, p->section, "refresh_token", NULL);
    if (!p->refresh_token || !*p->refresh_token)
        return error_set(e, TOKEND_EX_DATAERR,
                         "[%s] holds no refresh_token (the proxy has "
                         "not signed in to it yet)",
                         p->section);
    if (!salt || !*salt)
        return error_set(e, TOKEND_EX_DATAERR, "[%s] has no token_salt", p->section);
    g_strstrip(salt);
    p->salt = g_base64_decode(salt, &p->salt_len);
    if (p->salt_len == 0)
        return error_set(e, TOKEND_EX_DATAERR, "[%s]'s token_salt is not base64", p->section);
    p->iterations = PROXY_LEGACY_ITERATIONS;
    if (iter &&
        !g_ascii_string_to_unsigned(g_strstrip(iter), 10, 1, G_MAXUINT64, &p->iterations, NULL))
        return error_set(e, TOKEND_EX_DATAERR, "[%s]'s token_iterations is not a count",
                         p->section);
    if (p->iterations > PROXY_MAX_ITERATIONS)
        return error_set(e, TOKEND_EX_DATAERR,
                         "[%s]'s token_iterations is %" G_GUINT64_FORMAT
                         ", more than the %d rounds of PBKDF2 tokend will run (the proxy "
                         "writes 1200000); the file is not as the proxy wrote it",
                         p->section, p->iterations, PROXY_MAX_ITERATIONS);
    g_strstrip(p->refresh_token);
    p->client_id = g_key_file_get_value(kf, p->section, "client_id", NULL);
    if (p->client_id)
        g_strstrip(p->client_id);
    return 0;
}

ProxyEntry *import_parse_proxy_config(const char *text, size_t len, const char *username,
                                      struct tokend_error *e)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) gerr = NULL;
    g_autoptr(ProxyEntry) p = g_new0(ProxyEntry, 1);

    if (!g_key_file_load_from_data(kf, text, len, G_KEY_FILE_NONE, &gerr)) {
        error_set(e, TOKEND_EX_DATAERR, "not an emailproxy.config: %s", gerr->message);
        return NULL;
    }
    if (!(p->section = pick_section(kf, username, e)) || read_entry(kf, p, e) < 0)
        return NULL;
    return g_steal_pointer(&p);
}

int import_fernet_key(const SecStr *password, const guint8 *salt, gsize salt_len,
                      guint64 iterations, guint8 key[32], struct tokend_error *e)
{
    if (PKCS5_PBKDF2_HMAC(password->data, (int)password->len, salt, (int)salt_len, (int)iterations,
                          EVP_sha256(), 32, key) != 1)
        return error_set(e, TOKEND_EX_SOFTWARE, "PBKDF2 failed");
    return 0;
}

/* base64url with its padding, as Python's urlsafe_b64encode writes it. */
static guint8 *fernet_bytes(const char *token, gsize *len)
{
    size_t n = strlen(token);
    g_autofree char *std = NULL;

    *len = 0;
    if (n == 0 || n > FERNET_MAX || n % 4 != 0)
        return NULL;
    std = g_strdup(token);
    for (char *c = std; *c; c++) {
        if (*c == '-')
            *c = '+';
        else if (*c == '_')
            *c = '/';
        else if (!g_ascii_isalnum(*c) && *c != '=')
            return NULL;
    }
    return g_base64_decode(std, len);
}

static bool fernet_mac_ok(const guint8 *b, gsize len, const guint8 key[32])
{
    guint8 mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;

    if (!HMAC(EVP_sha256(), key, 16, b, len - FERNET_MAC, mac, &mac_len) || mac_len != FERNET_MAC)
        return false;
    return CRYPTO_memcmp(mac, b + len - FERNET_MAC, FERNET_MAC) == 0;
}

static SecStr *fernet_open(const guint8 *b, gsize len, const guint8 key[32])
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    gsize ct_len = len - FERNET_HEAD - FERNET_MAC;
    g_autoptr(SecStr) out = secstr_new(ct_len + 16);
    int n = 0, m = 0;
    bool ok =
        ctx && EVP_DecryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, key + 16, b + 9) == 1 &&
        EVP_DecryptUpdate(ctx, (unsigned char *)out->data, &n, b + FERNET_HEAD, (int)ct_len) == 1 &&
        EVP_DecryptFinal_ex(ctx, (unsigned char *)out->data + n, &m) == 1;

    EVP_CIPHER_CTX_free(ctx);
    if (!ok)
        return NULL;
    out->len = (size_t)(n + m);
    out->data[out->len] = '\0';
    return g_steal_pointer(&out);
}

SecStr *import_fernet_decrypt(const char *token, const guint8 key[32])
{
    gsize len;
    g_autofree guint8 *b = fernet_bytes(token, &len);

    if (!b || len < FERNET_HEAD + 16 + FERNET_MAC || b[0] != FERNET_VERSION ||
        (len - FERNET_HEAD - FERNET_MAC) % 16 != 0 || !fernet_mac_ok(b, len, key))
        return NULL;
    return fernet_open(b, len, key);
}
