/* Building and signing JWT assertions (RFC 7515, 7518, 7523). */

#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "tokend/assertion.h"
#include "tokend/pkce.h"
#include "tokend/shared.h"

#define JTI_BYTES 18

static const char *const alg_names[] = {
    [ASSERTION_ALG_RS256] = "RS256",
    [ASSERTION_ALG_PS256] = "PS256",
};

const char *assertion_alg_name(enum assertion_alg alg)
{
    return (size_t)alg < G_N_ELEMENTS(alg_names) ? alg_names[alg] : NULL;
}

int assertion_alg_from_name(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(alg_names); i++)
        if (g_strcmp0(alg_names[i], name) == 0)
            return (int)i;
    return -1;
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_MD_CTX, EVP_MD_CTX_free)

static void add_string(cJSON *o, const char *name, const char *value)
{
    if (value)
        cJSON_AddStringToObject(o, name, value);
}

static char *header_json(const struct assertion_claims *c, enum assertion_alg alg)
{
    g_autoptr(cJSON) h = cJSON_CreateObject();

    add_string(h, "alg", assertion_alg_name(alg));
    add_string(h, "typ", "JWT");
    add_string(h, "kid", c->kid);
    add_string(h, "x5t#S256", c->x5t_s256);
    add_string(h, "x5t", c->x5t);
    return cJSON_PrintUnformatted(h);
}

static char *claims_json(const struct assertion_claims *c, const char *jti)
{
    g_autoptr(cJSON) o = cJSON_CreateObject();

    add_string(o, "iss", c->iss);
    add_string(o, "sub", c->sub);
    add_string(o, "aud", c->aud);
    add_string(o, "scope", c->scope);
    add_string(o, "jti", jti);
    cJSON_AddNumberToObject(o, "iat", (double)c->now);
    cJSON_AddNumberToObject(o, "nbf", (double)c->now);
    cJSON_AddNumberToObject(o, "exp", (double)(c->now + c->lifetime));
    return cJSON_PrintUnformatted(o);
}

static void append_b64(SecStr *s, const void *data, size_t len)
{
    char *b = pkce_base64url(data, len);

    secstr_append_str(s, b);
    secure_free_str(b);
}

static int sign(const SecStr *input, enum assertion_alg alg, const AppKey *key, unsigned char **sig,
                size_t *sig_len, struct tokend_error *e)
{
    g_autoptr(EVP_MD_CTX) ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    bool ok;

    ok = ctx && EVP_DigestSignInit(ctx, &pctx, EVP_sha256(), NULL, app_key_pkey(key)) == 1;
    if (ok && alg == ASSERTION_ALG_PS256)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
    ok = ok &&
         EVP_DigestSign(ctx, NULL, sig_len, (const unsigned char *)input->data, input->len) == 1;
    *sig = ok ? g_malloc(*sig_len) : NULL;
    ok = ok &&
         EVP_DigestSign(ctx, *sig, sig_len, (const unsigned char *)input->data, input->len) == 1;
    ERR_clear_error();
    if (!ok) {
        g_clear_pointer(sig, g_free);
        return error_set(e, TOKEND_EX_SOFTWARE, "cannot sign the assertion with the key");
    }
    return 0;
}

SecStr *assertion_build(const struct assertion_claims *c, enum assertion_alg alg, const AppKey *key,
                        struct tokend_error *e)
{
    g_autofree char *random_jti = c->jti ? NULL : pkce_random_string(JTI_BYTES, e);
    g_autofree char *header = NULL;
    g_autofree char *claims = NULL;
    g_autoptr(SecStr) out = secstr_new(1024);
    unsigned char *sig = NULL;
    size_t sig_len = 0;

    if (!c->jti && !random_jti)
        return NULL;
    if (!assertion_alg_name(alg)) {
        error_set(e, TOKEND_EX_SOFTWARE, "unknown signature algorithm");
        return NULL;
    }
    header = header_json(c, alg);
    claims = claims_json(c, c->jti ? c->jti : random_jti);
    append_b64(out, header, strlen(header));
    secstr_append(out, ".", 1);
    append_b64(out, claims, strlen(claims));
    if (sign(out, alg, key, &sig, &sig_len, e) < 0)
        return NULL;
    secstr_append(out, ".", 1);
    append_b64(out, sig, sig_len);
    g_free(sig);
    return g_steal_pointer(&out);
}
