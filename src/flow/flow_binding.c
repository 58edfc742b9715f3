/* A refresh token goes back only to where it came from: after a change of
 * configuration that points the account at another server or client, it is
 * never sent (it would be handed to whoever runs that endpoint).
 *
 * The binding is kept twice: in the state (where status shows it) and with
 * the secret itself, in the store entry, so that a state lost, deleted or
 * older than the token defeats nothing.  The stored form is one line of
 * visible characters, which every store keeps (store = command takes one
 * such line):
 *
 *   tokend-rt1:BASE64URL({"client_id":...,"issuer":...,"token_url":...}):TOKEN
 *
 * A bare entry (written before the binding went with it) is read as it is,
 * checked against the state alone, and bound at its next save. */

#include <string.h>

#include "flow_internal.h"
#include "tokend/shared.h"
#include "tokend/state.h"

#define RECORD_PREFIX "tokend-rt1:"
#define RECORD_BINDING_MAX 4096

void flow_binding_record(AccountState *st, const Account *a)
{
    g_free(st->bound_client_id);
    g_free(st->bound_issuer);
    g_free(st->bound_token_url);
    st->bound_client_id = g_strdup(a->client_id);
    st->bound_issuer = g_strdup(a->issuer);
    st->bound_token_url = g_strdup(a->token_url);
    st->binding_refused = false;
}

static const char *where(const char *issuer, const char *token_url)
{
    if (token_url)
        return token_url;
    return issuer ? issuer : "(no server)";
}

static bool same_place(const Account *a, const char *client_id, const char *issuer,
                       const char *token_url)
{
    return g_strcmp0(client_id, a->client_id) == 0 && g_strcmp0(issuer, a->issuer) == 0 &&
           g_strcmp0(token_url, a->token_url) == 0;
}

static int refuse(const Account *a, const char *client_id, const char *issuer,
                  const char *token_url, struct tokend_error *e)
{
    g_autofree char *command = config_command(a, "obtain");

    error_set(e, TOKEND_EX_NOPERM,
              "the stored sign-in is for %s at %s, the configuration now says %s at %s; it is "
              "not sent there",
              client_id ? client_id : "(no client_id)", where(issuer, token_url),
              a->client_id ? a->client_id : "(no client_id)", where(a->issuer, a->token_url));
    error_set_hint(e, "run: %s", command);
    return -1;
}

int flow_binding_check(const Account *a, const AccountState *st, struct tokend_error *e)
{
    if (!st->bound_client_id ||
        same_place(a, st->bound_client_id, st->bound_issuer, st->bound_token_url))
        return 0;
    return refuse(a, st->bound_client_id, st->bound_issuer, st->bound_token_url, e);
}

static void add_field(cJSON *o, const char *name, const char *value)
{
    if (value)
        cJSON_AddStringToObject(o, name, value);
}

SecStr *flow_binding_wrap(const Account *a, const SecStr *rt)
{
    g_autoptr(cJSON) o = cJSON_CreateObject();
    g_autofree char *b64 = NULL;
    char *json;
    SecStr *s;

    add_field(o, "client_id", a->client_id);
    add_field(o, "issuer", a->issuer);
    add_field(o, "token_url", a->token_url);
    json = cJSON_PrintUnformatted(o);
    b64 = g_base64_encode((const guchar *)json, strlen(json));
    cJSON_free(json);
    /* base64url without padding: no ':' and nothing a shell or a line
     * reader would take apart. */
    g_strdelimit(b64, "+", '-');
    g_strdelimit(b64, "/", '_');
    g_strdelimit(b64, "=", '\0');
    s = secstr_new(strlen(RECORD_PREFIX) + strlen(b64) + 1 + rt->len);
    secstr_append_str(s, RECORD_PREFIX);
    secstr_append_str(s, b64);
    secstr_append(s, ":", 1);
    secstr_append(s, rt->data, rt->len);
    return s;
}

static cJSON *decode_binding(const char *b64, size_t len)
{
    g_autofree char *std = NULL;
    g_autofree guchar *json = NULL;
    gsize json_len = 0;

    if (len == 0 || len > RECORD_BINDING_MAX)
        return NULL;
    std = g_malloc(len + 4);
    for (size_t i = 0; i < len; i++) {
        if (!g_ascii_isalnum(b64[i]) && b64[i] != '-' && b64[i] != '_')
            return NULL;
        std[i] = b64[i] == '-' ? '+' : b64[i] == '_' ? '/' : b64[i];
    }
    memset(std + len, '=', (4 - len % 4) % 4);
    std[len + (4 - len % 4) % 4] = '\0';
    json = g_base64_decode(std, &json_len);
    return json && json_len ? cJSON_ParseWithLength((const char *)json, json_len) : NULL;
}

static const char *field(const cJSON *o, const char *name, bool *bad)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!v)
        return NULL;
    if (!cJSON_IsString(v) || !v->valuestring) {
        *bad = true;
        return NULL;
    }
    return v->valuestring;
}

static int damaged(const Account *a, struct tokend_error *e)
{
    g_autofree char *command = config_command(a, "obtain");

    error_set(e, TOKEND_EX_DATAERR,
              "the stored refresh token is not as tokend wrote it (a damaged binding); it is "
              "not sent anywhere");
    error_set_hint(e, "run: %s", command);
    return -1;
}

int flow_binding_unwrap(const Account *a, const SecStr *stored, SecStr **rt, bool *bound,
                        struct tokend_error *e)
{
    const char *b64 = stored->data + strlen(RECORD_PREFIX);
    const char *colon;
    g_autoptr(cJSON) o = NULL;
    bool bad = false;
    const char *client_id, *issuer, *token_url;

    *rt = NULL;
    *bound = g_str_has_prefix(stored->data, RECORD_PREFIX);
    if (!*bound) {
        *rt = secstr_dup(stored);
        return 0;
    }
    colon = strchr(b64, ':');
    if (!colon || colon[1] == '\0' ||
        !cJSON_IsObject(o = decode_binding(b64, (size_t)(colon - b64))))
        return damaged(a, e);
    client_id = field(o, "client_id", &bad);
    issuer = field(o, "issuer", &bad);
    token_url = field(o, "token_url", &bad);
    if (bad)
        return damaged(a, e);
    if (!same_place(a, client_id, issuer, token_url))
        return refuse(a, client_id, issuer, token_url, e);
    colon++;
    *rt = secstr_from(colon, stored->len - (size_t)(colon - stored->data));
    return 0;
}
