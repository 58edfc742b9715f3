/* Tokens for other scopes than the mail token's, from the same refresh
 * token: saving and checking a token set's cache.  The refresh itself is
 * flow_refresh's (flow_refresh_set), with the same lock and the same order
 * of writes. */

#include <string.h>
#include <unistd.h>

#include "flow_internal.h"
#include "tokend/fileio.h"
#include "tokend/lock.h"
#include "tokend/paths.h"
#include "tokend/state.h"
#include "tokend/tokenfile.h"
#include "tokend/tokenset.h"

/* Scopes that Microsoft leaves out of a response's `scope` although it
 * honours them: they are about the sign-in, not a resource. */
static const char *const unlisted_scopes[] = {"openid", "offline_access", "profile", "email", NULL};

/* The asked scopes that `granted` leaves out, space-separated, or NULL.
 * A response without `scope` grants what was asked (RFC 6749 section 5.1). */
static char *scopes_missing(const char *asked, const char *granted)
{
    g_auto(GStrv) want = g_strsplit(asked, " ", -1);
    g_auto(GStrv) have = g_strsplit_set(granted ? granted : "", " \t", -1);
    g_autoptr(GString) missing = g_string_new(NULL);

    if (!granted)
        return NULL;
    for (char **w = want; *w; w++) {
        if (!**w || g_strv_contains(unlisted_scopes, *w) ||
            g_strv_contains((const char *const *)have, *w))
            continue;
        if (missing->len)
            g_string_append_c(missing, ' ');
        g_string_append(missing, *w);
    }
    return missing->len ? g_string_free(g_steal_pointer(&missing), FALSE) : NULL;
}

static int not_granted(const Account *a, const char *missing, const char *granted,
                       struct tokend_error *e)
{
    g_autofree char *command = config_command(a, "obtain");

    error_set(e, TOKEND_EX_NOPERM, "the server did not grant %s (it granted: %s)", missing,
              *granted ? granted : "nothing");
    error_set_hint(e, "add them to scopes if the server grants them at sign-in, then run: %s",
                   command);
    return -1;
}

int flow_save_set_response(const Account *a, const char *dir, AccountState *st,
                           const struct token_set_target *set, const TokenResponse *t,
                           struct tokend_error *e)
{
    struct tokend_error ignored = TOKEND_ERROR_INIT;
    g_autofree char *path = tokenset_token_file(dir, set->key);
    g_autofree char *missing = scopes_missing(set->scopes, t->scope);
    gint64 now = state_now();
    StateTokenSet *ts;

    /* The new refresh token first: the old one may be revoked already. */
    if (t->refresh_token) {
        if (flow_save_rotated(a, st, t->refresh_token, e) < 0)
            return -1;
        st->last_refresh = now;
        flow_binding_record(st, a);
    }
    if (missing) {
        if (t->refresh_token && state_save(dir, st, &ignored) < 0)
            error_clear(&ignored);
        return not_granted(a, missing, t->scope, e);
    }
    fileio_remove_stale_temps(path);
    if (tokenfile_write(path, t->access_token, e) < 0)
        return -1;
    ts = state_token_set_get(st, set->key);
    g_free(ts->scopes);
    ts->scopes = g_strdup(set->scopes);
    g_free(ts->granted);
    ts->granted = g_strdup(t->scope);
    g_free(ts->config_id);
    ts->config_id = set->named ? g_strdup(a->config_id) : NULL;
    ts->expires_at = now + t->expires_in;
    ts->obtained_at = now;
    st->next_due = flow_next_due_of(a, st);
    return state_save(dir, st, e);
}

bool flow_set_fresh(const char *dir, const AccountState *st, const struct token_set_target *set,
                    int margin)
{
    const StateTokenSet *ts = state_token_set_find(st, set->key);
    g_autofree char *path = tokenset_token_file(dir, set->key);
    gint64 now = state_now();

    return ts && g_strcmp0(ts->scopes, set->scopes) == 0 &&
           state_expiry_fresh(ts->expires_at, margin, now) && access(path, F_OK) == 0;
}

SecStr *flow_read_set_token(const Account *a, const struct token_set_target *set,
                            struct tokend_error *e)
{
    g_autofree char *dir = paths_account_dir(a->name);
    g_autofree char *path = tokenset_token_file(dir, set->key);

    return tokenfile_read(path, NULL, e);
}

void flow_remember_set_config(const Account *a, const struct token_set_target *set)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *dir = paths_account_dir(a->name);
    g_autoptr(AccountState) st = NULL;
    StateTokenSet *ts;
    int fd;

    if (!set->named)
        return;
    fd = lock_acquire(dir, 0, &e);
    if (fd >= 0 && (st = state_load(dir, &e)) && (ts = state_token_set_find(st, set->key)) &&
        g_strcmp0(ts->scopes, set->scopes) == 0 && g_strcmp0(ts->config_id, a->config_id) != 0) {
        g_free(ts->config_id);
        ts->config_id = g_strdup(a->config_id);
        state_save(dir, st, &e);
    }
    lock_release(fd);
    error_clear(&e);
}

gint64 flow_set_seconds_left(const Account *a, const struct token_set_target *set)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *dir = paths_account_dir(a->name);
    g_autoptr(AccountState) st = paths_trust_private_dir(dir, &e) == 0 ? state_load(dir, &e) : NULL;
    const StateTokenSet *ts = st ? state_token_set_find(st, set->key) : NULL;

    error_clear(&e);
    if (!ts || g_strcmp0(ts->scopes, set->scopes) != 0)
        return 0;
    return MAX(ts->expires_at - state_now(), 0);
}
