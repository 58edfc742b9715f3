/* A refresh token goes back only to where it came from: after a change of
 * configuration that points the account at another server or client, it is
 * never sent (it would be handed to whoever runs that endpoint). */

#include "flow_internal.h"
#include "tokend/state.h"

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

int flow_binding_check(const Account *a, const AccountState *st, struct tokend_error *e)
{
    if (!st->bound_client_id)
        return 0;
    if (g_strcmp0(st->bound_client_id, a->client_id) == 0 &&
        g_strcmp0(st->bound_issuer, a->issuer) == 0 &&
        g_strcmp0(st->bound_token_url, a->token_url) == 0)
        return 0;
    error_set(e, TOKEND_EX_NOPERM,
              "the stored sign-in is for %s at %s, the configuration now says %s at %s; it is "
              "not sent there",
              st->bound_client_id, where(st->bound_issuer, st->bound_token_url),
              a->client_id ? a->client_id : "(no client_id)", where(a->issuer, a->token_url));
    error_set_hint(e, "run: tokend obtain %s", a->name);
    return -1;
}
