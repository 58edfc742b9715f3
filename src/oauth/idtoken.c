/* Reading an ID token's claims: base64url with GLib, JSON with cJSON, every
 * size bounded, anything odd refused rather than guessed at. */

#include <string.h>

#include "tokend/idtoken.h"
#include "tokend/shared.h"

#define IDTOKEN_MAX_BYTES (16 * 1024)
#define CLAIM_MAX_BYTES 256

void id_claims_free(IdClaims *c)
{
    if (!c)
        return;
    g_free(c->sub);
    g_free(c->email);
    g_free(c->preferred_username);
    g_free(c->upn);
    g_free(c);
}

static int malformed(struct tokend_error *e, const char *what)
{
    return error_set(e, TOKEND_EX_DATAERR, "malformed id_token in the token response: %s", what);
}

static bool base64url_char(char ch)
{
    return g_ascii_isalnum(ch) || ch == '-' || ch == '_';
}

/* base64url without padding (RFC 7515 section 2) to bytes. */
static guchar *base64url_decode(const char *s, size_t len, gsize *out_len)
{
    g_autofree char *std = NULL;
    size_t padded = len + (4 - len % 4) % 4;

    if (len == 0 || len % 4 == 1)
        return NULL;
    for (size_t i = 0; i < len; i++)
        if (!base64url_char(s[i]))
            return NULL;
    std = g_malloc(padded + 1);
    for (size_t i = 0; i < len; i++)
        std[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    memset(std + len, '=', padded - len);
    std[padded] = '\0';
    return g_base64_decode(std, out_len);
}

static bool text_usable(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > CLAIM_MAX_BYTES || !g_utf8_validate(s, (gssize)n, NULL))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((guchar)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static char *get_claim(const cJSON *root, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);

    return cJSON_IsString(v) && v->valuestring && text_usable(v->valuestring)
               ? g_strdup(v->valuestring)
               : NULL;
}

static bool audience_has(const cJSON *root, const char *client_id)
{
    const cJSON *aud = cJSON_GetObjectItemCaseSensitive(root, "aud");
    const cJSON *item;

    if (cJSON_IsString(aud))
        return g_strcmp0(aud->valuestring, client_id) == 0;
    cJSON_ArrayForEach(item, aud) if (cJSON_IsString(item) &&
                                      g_strcmp0(item->valuestring, client_id) == 0) return true;
    return false;
}

static cJSON *decode_payload(const char *jwt, size_t len, struct tokend_error *e)
{
    const char *dot1 = memchr(jwt, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - jwt)) : NULL;
    g_autofree guchar *json = NULL;
    gsize json_len = 0;
    const char *end = NULL;
    cJSON *root;

    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - jwt))) {
        malformed(e, "not a signed JWT (header.payload.signature)");
        return NULL;
    }
    json = base64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &json_len);
    if (!json) {
        malformed(e, "the payload is not base64url");
        return NULL;
    }
    /* cJSON would end a string at a NUL and hide what follows. */
    if (memchr(json, '\0', json_len) || g_strstr_len((char *)json, (gssize)json_len, "\\u0000")) {
        malformed(e, "the payload holds a NUL");
        return NULL;
    }
    root = cJSON_ParseWithLengthOpts((const char *)json, json_len, &end, false);
    while (root && end < (const char *)json + json_len && g_ascii_isspace(*end))
        end++;
    if (!cJSON_IsObject(root) || end != (const char *)json + json_len) {
        cJSON_Delete(root);
        malformed(e, "the payload is not a JSON object");
        return NULL;
    }
    return root;
}

static IdClaims *claims_of(const cJSON *root)
{
    IdClaims *c = g_new0(IdClaims, 1);

    c->sub = get_claim(root, "sub");
    c->email = get_claim(root, "email");
    c->preferred_username = get_claim(root, "preferred_username");
    c->upn = get_claim(root, "upn");
    return c;
}

int idtoken_parse(const char *jwt, size_t len, const char *client_id, IdClaims **out,
                  struct tokend_error *e)
{
    g_autoptr(cJSON) root = NULL;

    if (len == 0 || len > IDTOKEN_MAX_BYTES)
        return malformed(e, len ? "too long" : "empty");
    if (!(root = decode_payload(jwt, len, e)))
        return -1;
    if (client_id && !audience_has(root, client_id))
        return malformed(e, "it is not meant for this client (aud)");
    *out = claims_of(root);
    return 0;
}

int idtoken_parse_userinfo(const char *json, size_t len, IdClaims **out, struct tokend_error *e)
{
    g_autoptr(cJSON) root = NULL;
    const char *end = NULL;

    if (len == 0 || len > IDTOKEN_MAX_BYTES || memchr(json, '\0', len))
        return error_set(e, TOKEND_EX_DATAERR, "the userinfo answer is %s",
                         len ? "too long or holds a NUL" : "empty");
    root = cJSON_ParseWithLengthOpts(json, len, &end, false);
    while (root && end < json + len && g_ascii_isspace(*end))
        end++;
    if (!cJSON_IsObject(root) || end != json + len)
        return error_set(e, TOKEND_EX_DATAERR, "the userinfo answer is not a JSON object");
    *out = claims_of(root);
    return 0;
}

char *idtoken_claim(const char *jwt, size_t len, const char *name)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(cJSON) root =
        len > 0 && len <= IDTOKEN_MAX_BYTES ? decode_payload(jwt, len, &e) : NULL;

    error_clear(&e);
    return root ? get_claim(root, name) : NULL;
}

bool idtoken_has_name(const IdClaims *c)
{
    return c && (c->email || c->preferred_username || c->upn);
}

const char *idtoken_match(const IdClaims *c, const char *name)
{
    const char *names[] = {c ? c->email : NULL, c ? c->preferred_username : NULL,
                           c ? c->upn : NULL};

    if (!c || !name || !*name)
        return NULL;
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
        if (names[i] && g_ascii_strcasecmp(names[i], name) == 0)
            return names[i];
    if (c->sub && strcmp(c->sub, name) == 0)
        return c->sub;
    return NULL;
}

const char *idtoken_best_name(const IdClaims *c)
{
    if (!c)
        return NULL;
    if (c->email)
        return c->email;
    if (c->preferred_username)
        return c->preferred_username;
    if (c->upn)
        return c->upn;
    return c->sub;
}
