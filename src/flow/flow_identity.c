/* Who signed in.  The id_token of a code redemption, a device grant or a
 * refresh names the user; that name must be the account's (its username,
 * or its identity where the sign-in name differs from the mailbox), or
 * nothing is stored.  Without this check, whoever can read the
 * authorization URL (another local user, from the browser's command line)
 * could sign in as themselves and hand their code to the catcher. */

#include <string.h>

#include "flow_internal.h"
#include "tokend/idtoken.h"
#include "tokend/log.h"
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

/* The claims against the account: *out NULL when no check is wanted and
 * nobody is named; a name matching neither username nor identity is
 * refused. */
static int judge(const Account *a, const IdClaims *claims, FlowIdentity **out,
                 struct tokend_error *e)
{
    g_autoptr(FlowIdentity) id = g_new0(FlowIdentity, 1);
    const char *match = NULL;

    *out = NULL;
    id->wanted = wants_check(a);
    if (a->username)
        match = idtoken_match(claims, a->username);
    if (!match && a->identity)
        match = idtoken_match(claims, a->identity);
    /* sub alone is an opaque identifier at most providers: it can confirm
     * an account but not refuse one. */
    if (!match && id->wanted && idtoken_has_name(claims))
        return mismatch(a, idtoken_best_name(claims), e);
    id->verified = match != NULL;
    id->name = g_strdup(match ? match : idtoken_best_name(claims));
    if (id->name || id->wanted)
        *out = g_steal_pointer(&id);
    return 0;
}

int flow_identity_check(const Account *a, const TokenResponse *t, FlowIdentity **out,
                        struct tokend_error *e)
{
    g_autoptr(IdClaims) claims = NULL;

    *out = NULL;
    if (read_claims(a, t, &claims, e) < 0) {
        if (wants_check(a))
            return -1;
        /* Nobody to compare with: an unreadable id_token is no reason to
         * refuse a sign-in. */
        error_clear(e);
        return 0;
    }
    return judge(a, claims, out, e);
}

/* OpenID Connect Core 5.3: the userinfo endpoint names the user for the
 * access token (oidc-provider, for one, gives email only there).  Its sub
 * must be the id_token's (5.3.2), or its answer is not used. */
static IdClaims *ask_userinfo(const Account *a, const FlowClient *c, Http *http,
                              const TokenResponse *t, const IdClaims *seen)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(HttpResponse) r = NULL;
    IdClaims *info = NULL;

    if (http_get_bearer(http, c->userinfo_url, t->access_token, &r, &e) == 0 && r->status != 200)
        error_set(&e, TOKEND_EX_DATAERR, "HTTP %ld", r->status);
    else if (r)
        idtoken_parse_userinfo(r->body->data, r->body->len, &info, &e);
    if (info && seen && seen->sub && g_strcmp0(seen->sub, info->sub) != 0) {
        g_clear_pointer(&info, id_claims_free);
        error_set(&e, TOKEND_EX_DATAERR, "it names another subject than the id_token");
    }
    if (e.message)
        log_warn("%s: could not learn from %s who signed in (%s)", a->name, c->userinfo_url,
                 e.message);
    error_clear(&e);
    return info;
}

int flow_identity_check_signin(const Account *a, const FlowClient *c, Http *http,
                               const TokenResponse *t, FlowIdentity **out, struct tokend_error *e)
{
    g_autoptr(IdClaims) claims = NULL;
    g_autoptr(IdClaims) info = NULL;

    *out = NULL;
    if (read_claims(a, t, &claims, e) < 0 && wants_check(a))
        return -1;
    error_clear(e);
    if (wants_check(a) && !idtoken_has_name(claims) && c->userinfo_url && t->access_token &&
        (info = ask_userinfo(a, c, http, t, claims)) != NULL) {
        if (!info->sub && claims && claims->sub)
            info->sub = g_strdup(claims->sub);
        return judge(a, info, out, e);
    }
    return judge(a, claims, out, e);
}

void flow_identity_remember(AccountState *st, const FlowIdentity *id, bool signin)
{
    /* A refresh that says nothing of the user keeps what the sign-in saw. */
    if (!signin && (!id || !id->name))
        return;
    g_free(st->identity);
    st->identity = id ? g_strdup(id->name) : NULL;
    st->identity_verified = id && id->verified;
    g_free(st->identity_check);
    st->identity_check = !id || !id->wanted ? NULL
                         : id->verified     ? g_strdup("verified")
                                            : g_strdup("not verified");
}
