/* Who signed in.  The id_token of a code redemption, a device grant or a
 * refresh names the user; that name must be the account's (its username,
 * or its identity where the sign-in name differs from the mailbox), or
 * nothing is stored.  Without this check, whoever can read the
 * authorization URL (another local user, from the browser's command line)
 * could sign in as themselves and hand their code to the catcher. */

#include <string.h>

#include "flow_internal.h"
#include "tokend/idtoken.h"
#include "tokend/state.h"

void flow_identity_free(FlowIdentity *id)
{
    if (!id)
        return;
    g_free(id->name);
    g_free(id);
}

static bool wants_check(const Account *a)
{
    return (a->username && *a->username) || (a->identity && *a->identity);
}

static char *expected_names(const Account *a)
{
    if (a->username && a->identity)
        return g_strdup_printf("%s (username) or %s (identity)", a->username, a->identity);
    return g_strdup(a->identity ? a->identity : a->username);
}

static int mismatch(const Account *a, const char *who, struct tokend_error *e)
{
    g_autofree char *expected = expected_names(a);

    error_set(e, TOKEND_EX_NOPERM, "signed in as %s, not as %s: nothing was saved", who, expected);
    error_set_hint(e,
                   "run: tokend obtain %s and sign in as %s, or set identity = %s in [account "
                   "%s] if that is this account's sign-in name",
                   a->name, a->identity ? a->identity : a->username, who, a->name);
    return -1;
}

static int read_claims(const Account *a, const TokenResponse *t, IdClaims **claims,
                       struct tokend_error *e)
{
    if (t->id_token_bad)
        return error_set(e, TOKEND_EX_DATAERR,
                         "malformed id_token in the token response: not a string");
    if (!t->id_token)
        return 0;
    return idtoken_parse(t->id_token->data, t->id_token->len, a->client_id, claims, e);
}

int flow_identity_check(const Account *a, const TokenResponse *t, FlowIdentity **out,
                        struct tokend_error *e)
{
    g_autoptr(IdClaims) claims = NULL;
    g_autoptr(FlowIdentity) id = NULL;
    const char *match = NULL;

    *out = NULL;
    if (read_claims(a, t, &claims, e) < 0) {
        if (wants_check(a))
            return -1;
        /* Nobody to compare with: an unreadable id_token is no reason to
         * refuse a sign-in. */
        error_clear(e);
        return 0;
    }
    if (!claims || !idtoken_best_name(claims))
        return 0;
    id = g_new0(FlowIdentity, 1);
    if (a->username)
        match = idtoken_match(claims, a->username);
    if (!match && a->identity)
        match = idtoken_match(claims, a->identity);
    /* sub alone is an opaque identifier at most providers: it can confirm
     * an account but not refuse one. */
    if (!match && wants_check(a) && idtoken_has_name(claims))
        return mismatch(a, idtoken_best_name(claims), e);
    id->verified = match != NULL;
    id->name = g_strdup(match ? match : idtoken_best_name(claims));
    *out = g_steal_pointer(&id);
    return 0;
}

void flow_identity_remember(AccountState *st, const FlowIdentity *id, bool signin)
{
    /* A refresh that says nothing of the user keeps what the sign-in saw. */
    if (!id && !signin)
        return;
    g_free(st->identity);
    st->identity = id ? g_strdup(id->name) : NULL;
    st->identity_verified = id && id->verified;
}
