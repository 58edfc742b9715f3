/* Refreshing access tokens, one account at a time (for `token`) or many at
 * once over one connection pool (for `refresh`).  Both run the same steps:
 * begin (under the account's lock: re-check, read the refresh token, build
 * the request), send, finish (save the rotated refresh token first). */

#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "flow_internal.h"
#include "tokend/fault.h"
#include "tokend/http.h"
#include "tokend/lock.h"
#include "tokend/log.h"
#include "tokend/paths.h"
#include "tokend/room.h"
#include "tokend/state.h"
#include "tokend/store.h"

struct refresh_job {
    struct refresh_request *req;
    int margin;
    bool force;
    char *dir;
    AccountState *st;
    int lock_fd;
    FlowClient *client;
    SecStr *form;
    SecStr *basic;          /* HTTP Basic "ID:SECRET" when the server wants it there */
    HttpResponse *response; /* bulk: the answer, until a writer has saved it */
    struct tokend_error net_error;
    bool reserved;                      /* room for the answer is reserved (room_reserve) */
    const struct token_set_target *set; /* a token set's refresh, or NULL */
    SecStr *unbound;                    /* the token, when stored bare: bind it after */
    char *set_request;                  /* the scopes that refresh asks for */
};

enum begin_result {
    BEGIN_FAILED = -1,
    BEGIN_DONE = 0, /* nothing to send: outcome set */
    BEGIN_SEND = 1, /* lock held, request ready */
    BEGIN_BUSY = 2, /* another tokend holds the lock: try again later */
};

/* A refresh is not interrupted between sending the request and saving the
 * answer: the server may already have rotated the refresh token, and the
 * new one exists nowhere else.  Termination signals (a shutdown's SIGTERM,
 * Ctrl-C, a closed terminal) are held until the answers in hand are saved,
 * then act as usual; a bulk refresh sends nothing new once one is pending.
 * Every wait in between is bounded (the request timeout). */
static const int termination_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};

static void hold_termination(sigset_t *old)
{
    sigset_t set;

    sigemptyset(&set);
    for (size_t i = 0; i < G_N_ELEMENTS(termination_signals); i++)
        sigaddset(&set, termination_signals[i]);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

static void release_termination(const sigset_t *old)
{
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

static bool termination_pending(void)
{
    sigset_t pending;

    if (sigpending(&pending) < 0)
        return false;
    for (size_t i = 0; i < G_N_ELEMENTS(termination_signals); i++)
        if (sigismember(&pending, termination_signals[i]) == 1)
            return true;
    return false;
}

static void job_clear(struct refresh_job *j)
{
    if (j->reserved)
        room_release(j->req->account, j->dir);
    j->reserved = false;
    lock_release(j->lock_fd);
    j->lock_fd = -1;
    g_clear_pointer(&j->dir, g_free);
    g_clear_pointer(&j->st, state_free);
    g_clear_pointer(&j->client, flow_client_free);
    g_clear_pointer(&j->form, secstr_free);
    g_clear_pointer(&j->basic, secstr_free);
    g_clear_pointer(&j->unbound, secstr_free);
    g_clear_pointer(&j->response, http_response_free);
    g_clear_pointer(&j->set_request, g_free);
    error_clear(&j->net_error);
}

/* A first sign-in killed after storing its refresh token but before writing
 * the state leaves the token where that sign-in chose to keep it. */
static bool find_unrecorded_refresh_token(const Account *a, AccountState *st, SecStr **rt)
{
    struct tokend_error probe = TOKEND_ERROR_INIT;
    g_autoptr(Store) s = store_open_account(a, NULL, &probe);
    bool found = s && store_get(s, a->name, STORE_REFRESH_TOKEN, rt, &probe) == 0 && *rt;

    if (found)
        st->store = g_strdup(store_name(s));
    error_clear(&probe);
    return found;
}

/* A save that fell back to the other store (the keyring for the file, or
 * the reverse) and then could not write the state leaves the token there. */
static bool find_moved_refresh_token(const Account *a, AccountState *st, SecStr **rt)
{
    struct tokend_error probe = TOKEND_ERROR_INIT;
    int kind = store_kind_from_name(st->store);
    g_autoptr(Store) s =
        kind < 0 ? NULL : store_open_quietly(store_kind_info(kind)->fallback, &probe);
    bool found = s && store_get(s, a->name, STORE_REFRESH_TOKEN, rt, &probe) == 0 && *rt;

    if (found) {
        g_free(st->store);
        st->store = g_strdup(store_name(s));
    }
    error_clear(&probe);
    return found;
}

static int find_refresh_token(const Account *a, AccountState *st, SecStr **stored,
                              struct tokend_error *e)
{
    g_autoptr(Store) s = NULL;

    if (!st->store && find_unrecorded_refresh_token(a, st, stored))
        return 0;
    if (!st->store)
        return flow_signin_needed(a, "not signed in yet (no refresh token stored)", e);
    s = store_open_account(a, st->store, e);
    if (!s || store_get(s, a->name, STORE_REFRESH_TOKEN, stored, e) < 0)
        return -1;
    if (!*stored && !find_moved_refresh_token(a, st, stored))
        return flow_signin_needed(a, "no refresh token is stored", e);
    return 0;
}

/* The stored token, wherever it is, and only if it is bound to where the
 * account now points (flow_binding.c): checked before anything is sent,
 * discovery included, whatever the state says.  *unbound: a bare entry of
 * before the binding, to be stored bound after the refresh. */
static int load_refresh_token(const Account *a, AccountState *st, SecStr **rt, SecStr **unbound,
                              struct tokend_error *e)
{
    g_autoptr(SecStr) stored = NULL;
    bool bound = false;

    if (find_refresh_token(a, st, &stored, e) < 0 ||
        flow_binding_unwrap(a, stored, rt, &bound, e) < 0)
        return -1;
    if (!bound)
        *unbound = secstr_dup(*rt);
    return 0;
}

/* Under the lock, before anything is read or sent: a rescued refresh token
 * goes back into the store; the stored one goes to no other server or
 * client than the one it came from (not even for metadata); and there is
 * room to save what the server answers. */
static int make_safe(struct refresh_job *j)
{
    const Account *a = j->req->account;
    struct tokend_error *e = &j->req->error;

    if (room_take_back(a, j->st, e) < 0)
        return -1;
    if (flow_binding_check(a, j->st, e) < 0) {
        /* For status, and for the next runs: a sign-in is needed. */
        j->st->binding_refused = true;
        flow_record_failure(j->dir, j->st, e);
        return -1;
    }
    if (room_reserve(a, j->dir, e) < 0)
        return -1;
    j->reserved = true;
    return 0;
}

/* A token set's scopes, and offline_access where the provider wants it
 * asked for on every refresh (provider.h). */
static char *set_request_scopes(const Account *a, const struct token_set_target *set)
{
    g_auto(GStrv) scopes = g_strsplit(set->scopes, " ", -1);

    if (!a->provider->sets_ask_offline_access ||
        g_strv_contains((const char *const *)scopes, "offline_access"))
        return g_strdup(set->scopes);
    return g_strconcat(set->scopes, " offline_access", NULL);
}

/* Everything up to the request, under the lock. */
static int prepare_locked(struct refresh_job *j, Http *http)
{
    const Account *a = j->req->account;
    struct tokend_error *e = &j->req->error;
    g_autoptr(SecStr) rt = NULL;

    if (load_refresh_token(a, j->st, &rt, &j->unbound, e) < 0) {
        j->req->never_signed_in = !j->st->store && !j->st->needs_signin && j->st->signed_in_at == 0;
        return BEGIN_FAILED;
    }
    if (!(j->client = flow_client_new(a, http, e)))
        return BEGIN_FAILED;
    if (j->set) {
        j->set_request = set_request_scopes(a, j->set);
        j->client->oauth.refresh_scopes = j->set_request;
    }
    j->form = oauth_refresh_form(&j->client->oauth, rt);
    j->basic = oauth_client_basic(&j->client->oauth);
    FAULT_POINT("before-request");
    return BEGIN_SEND;
}

static enum begin_result take_lock(struct refresh_job *j, bool wait)
{
    struct tokend_error *e = &j->req->error;

    j->lock_fd = lock_acquire(j->dir, wait ? LOCK_TIMEOUT_MS : 0, e);
    if (j->lock_fd >= 0)
        return BEGIN_SEND;
    if (wait || e->status != TOKEND_EX_TEMPFAIL)
        return BEGIN_FAILED;
    error_clear(e);
    return BEGIN_BUSY;
}

/* Reads the state; BEGIN_DONE (with that outcome) if it needs nothing. */
static enum begin_result look(struct refresh_job *j, enum refresh_outcome if_fresh)
{
    state_free(j->st);
    if (!(j->st = state_load(j->dir, &j->req->error)))
        return BEGIN_FAILED;
    j->req->signin_known = j->st->needs_signin;
    if (!j->force &&
        (j->set ? flow_set_fresh(j->dir, j->st, j->set, j->margin)
                : state_token_ready(j->st, j->req->account->token_file, j->margin, state_now()))) {
        j->req->outcome = if_fresh;
        return BEGIN_DONE;
    }
    return BEGIN_SEND;
}

/* One account's steps up to the request.  Waiting (`token`, one account):
 * look at the state first, so that a fresh token costs no lock, then again
 * under the lock, since whoever held it may have refreshed already.  Not
 * waiting (bulk): try the lock first, then read the state once; an account
 * whose lock is held elsewhere is left for later. */
static enum begin_result job_begin(struct refresh_job *j, Http *http, bool wait)
{
    enum begin_result r;

    j->lock_fd = -1;
    j->dir = paths_account_dir(j->req->account->name);
    if (paths_ensure_private_dir(j->dir, &j->req->error) < 0)
        return BEGIN_FAILED;
    if (wait && (r = look(j, REFRESH_NOT_NEEDED)) != BEGIN_SEND)
        return r;
    if ((r = take_lock(j, wait)) != BEGIN_SEND ||
        (r = look(j, wait ? REFRESH_DONE_ELSEWHERE : REFRESH_NOT_NEEDED)) != BEGIN_SEND)
        return r;
    flow_remove_stale_temps(j->req->account, j->dir);
    if (make_safe(j) < 0)
        return BEGIN_FAILED;
    return prepare_locked(j, http);
}

/* Bulk: what the schedule needs to know, from the state in hand. */
static void note_next_due(struct refresh_job *j)
{
    j->req->next_due = flow_next_due_of(j->req->account, j->st);
    j->req->next_due_known = true;
}

/* The server refused a token set's scopes: say what the grant holds. */
static int set_refused(struct refresh_job *j, struct tokend_error *e)
{
    g_autofree char *command = config_command(j->req->account, "obtain");

    if (e->status != TOKEND_EX_CONFIG || !j->st->scope)
        return -1;
    error_prefix(e, "a token for %s", j->set->scopes);
    error_set_hint(e, "the sign-in granted %s; for more, add them to scopes and run: %s",
                   j->st->scope, command);
    return -1;
}

/* A server that does not rotate (Google) never sends a token to save: the
 * bare entry it refreshed with is stored again, bound now. */
static void bind_kept_token(struct refresh_job *j)
{
    const Account *a = j->req->account;
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *before = g_strdup(j->st->store);

    if (flow_save_rotated(a, j->st, j->unbound, &e) < 0)
        log_warn("%s: %s", a->name, e.message);
    else if (g_strcmp0(before, j->st->store) != 0 && state_save(j->dir, j->st, &e) < 0)
        log_warn("%s: %s", a->name, e.message);
    error_clear(&e);
}

static int job_finish(struct refresh_job *j, const HttpResponse *r, struct tokend_error *err)
{
    const Account *a = j->req->account;
    struct tokend_error *e = &j->req->error;
    g_autoptr(TokenResponse) t = NULL;
    g_autoptr(FlowIdentity) id = NULL;

    if (!r)
        error_move(e, err);
    if (!r || oauth_parse_token_response(r, &t, e) < 0) {
        /* A sign-in's advice, and then the command to sign in again. */
        if (e->status == TOKEND_EX_NOPERM &&
            (!e->hint || g_str_has_prefix(e->message, "sign-in needed"))) {
            g_autofree char *command = config_command(a, "obtain");
            g_autofree char *advice = g_steal_pointer(&e->hint);
            error_set_hint(e, "%s%srun: %s", advice ? advice : "", advice ? "; " : "", command);
        }
        /* A token set's refusal says nothing of the mail token's grant. */
        if (j->set)
            return set_refused(j, e);
        flow_record_failure(j->dir, j->st, e);
        return -1;
    }
    FAULT_POINT("after-response");
    /* Someone else's sign-in is not saved: the old tokens stay. */
    if (flow_identity_check(a, t, &id, e) < 0) {
        flow_record_failure(j->dir, j->st, e);
        return -1;
    }
    flow_identity_remember(j->st, id, false);
    if (j->set ? flow_save_set_response(a, j->dir, j->st, j->set, t, e) < 0
               : flow_save_response(a, j->dir, j->st, NULL, t, e) < 0)
        return -1;
    if (!t->refresh_token && j->unbound)
        bind_kept_token(j);
    j->req->outcome = REFRESH_DONE;
    return 0;
}

static int refresh_one(const Account *a, int margin, bool force, const struct token_set_target *set,
                       enum refresh_outcome *outcome, struct tokend_error *e)
{
    struct refresh_request req = {.account = a, .error = TOKEND_ERROR_INIT};
    struct refresh_job j = {
        .req = &req, .margin = margin, .force = force, .lock_fd = -1, .set = set};
    g_autoptr(Http) http = http_new(a->ca_file);
    g_autoptr(HttpResponse) r = NULL;
    struct tokend_error err = TOKEND_ERROR_INIT;
    sigset_t old;
    int rc;

    if (config_app_only(a) && !set)
        return flow_app_refresh(a, margin, force ? G_MAXINT64 : 0, outcome, e);
    if (config_app_only(a))
        return error_set(e, TOKEND_EX_CONFIG,
                         "token sets need a refresh token, which an "
                         "app-only account never has");
    switch (job_begin(&j, http, true)) {
    case BEGIN_SEND:
        /* Not while waiting for the lock: only once the request goes out. */
        hold_termination(&old);
        rc = http_request_auth(http, j.client->token_url, j.form, j.basic, &r, &err);
        rc = job_finish(&j, rc == 0 ? r : NULL, &err);
        g_clear_pointer(&r, http_response_free);
        job_clear(&j);
        release_termination(&old);
        break;
    case BEGIN_DONE:
        rc = 0;
        break;
    case BEGIN_BUSY:
    case BEGIN_FAILED:
    default:
        rc = -1;
        break;
    }
    job_clear(&j);
    *outcome = req.outcome;
    error_move(e, &req.error);
    return rc;
}

int flow_refresh(const Account *a, int margin, bool force, enum refresh_outcome *outcome,
                 struct tokend_error *e)
{
    return refresh_one(a, margin, force, NULL, outcome, e);
}

int flow_refresh_set(const Account *a, const struct token_set_target *set, int margin, bool force,
                     enum refresh_outcome *outcome, struct tokend_error *e)
{
    return refresh_one(a, margin, force, set, outcome, e);
}

/* Many accounts: at most max_parallel requests in flight, each account
 * locked only while its own request is, and until its answer is saved.
 *
 * Saving is what a refresh spends its time on: every answer is written with
 * four syncs (the refresh token durably, then the token file and the state),
 * and one account's syncs wait for the disk one after the other.  So the
 * answers go to writer threads, in whose syncs the file system commits many
 * accounts' writes at once (on ext4 with a journal, 1000 accounts' writes
 * take 1.28 s from one thread and 0.31 s from 64: bench/RESULTS.md), while
 * the event loop goes on sending.  Each account's writes stay in order in one
 * thread, under its lock.  WRITE_BACKLOG bounds the answers waiting to be
 * saved (each holds its lock's descriptor). */
#define WRITERS 64
#define WRITE_BACKLOG (2 * WRITERS)
/* Test builds: a smaller backlog, with every save 20 ms slower, so that the
 * answers outrun the writers. */
#define TEST_BACKLOG_VAR "TOKEND_FAULT_WRITE_BACKLOG"

struct bulk {
    HttpMulti *multi;
    Http *http; /* discovery, when an account needs it */
    struct refresh_job *jobs;
    size_t n, next;
    int in_flight, max_parallel;
    GArray *busy;         /* indexes of jobs whose lock was held elsewhere */
    GAsyncQueue *answers; /* for the writers; b itself tells one to stop */
    GPtrArray *writers;   /* started as needed, joined at the end */
    GMutex mutex;
    GCond saved;
    int writing; /* answers handed to the writers and not saved yet */
    int backlog;
    guint max_writers;
    bool slow_writes; /* test builds only */
    bool stopping;    /* a termination signal is pending: send nothing new */
    FlowAppRun *apps; /* app-only accounts: which apps this run minted for */
};

static void bulk_fill(struct bulk *b);

static int bulk_writing(struct bulk *b)
{
    int n;

    g_mutex_lock(&b->mutex);
    n = b->writing;
    g_mutex_unlock(&b->mutex);
    return n;
}

static gpointer writer_run(gpointer data)
{
    struct bulk *b = data;
    struct refresh_job *j;

    while ((j = g_async_queue_pop(b->answers)) != (gpointer)b) {
        if (b->slow_writes)
            g_usleep(20000);
        job_finish(j, j->response, &j->net_error);
        note_next_due(j);
        job_clear(j);
        g_mutex_lock(&b->mutex);
        b->writing--;
        g_cond_signal(&b->saved);
        g_mutex_unlock(&b->mutex);
    }
    return NULL;
}

static void on_done(void *user, HttpResponse *r, struct tokend_error *e)
{
    struct refresh_job *j = user;
    struct bulk *b = j->req->bulk;
    int writing;

    j->response = r;
    error_move(&j->net_error, e);
    g_mutex_lock(&b->mutex);
    writing = ++b->writing;
    g_mutex_unlock(&b->mutex);
    /* One more writer while every one is busy, up to WRITERS. */
    if ((guint)writing > b->writers->len && b->writers->len < b->max_writers)
        g_ptr_array_add(b->writers, g_thread_new("tokend-writer", writer_run, b));
    g_async_queue_push(b->answers, j);
    b->in_flight--;
    bulk_fill(b);
}

static void bulk_fill(struct bulk *b)
{
    if (!b->stopping && b->next < b->n && termination_pending()) {
        log_verbose("refresh: stopping; saving the answers in hand first");
        b->stopping = true;
    }
    while (!b->stopping && b->in_flight < b->max_parallel && b->next < b->n &&
           bulk_writing(b) < b->backlog) {
        size_t i = b->next++;
        struct refresh_job *j = &b->jobs[i];

        /* App-only accounts one after the other: the first of an app's
         * mailboxes mints, the others take its token. */
        if (config_app_only(j->req->account)) {
            flow_app_refresh_in_run(b->apps, j->req->account, j->margin, &j->req->outcome,
                                    &j->req->error);
            continue;
        }
        switch (job_begin(j, b->http, false)) {
        case BEGIN_SEND:
            if (http_multi_add(b->multi, j->client->token_url, j->req->account->ca_file, j->form,
                               j->basic, on_done, j, &j->req->error) == 0) {
                b->in_flight++;
                continue;
            }
            flow_record_failure(j->dir, j->st, &j->req->error);
            break;
        case BEGIN_BUSY:
            g_array_append_val(b->busy, i);
            break;
        case BEGIN_DONE:
            note_next_due(j);
            break;
        case BEGIN_FAILED:
            break;
        }
        job_clear(j);
    }
}

/* Every request in flight holds a socket and a lock, every answer waiting
 * to be saved its lock, every writer a file or two: raise the soft limit on
 * descriptors to the hard one, and where even that is too low, do fewer
 * things at once rather than fail to save an answer. */
#define FD_RESERVE 32 /* standard streams, libraries, the configuration */

static void fit_file_limit(struct bulk *b)
{
    struct rlimit r;
    long avail;

    if (getrlimit(RLIMIT_NOFILE, &r) < 0)
        return;
    if (r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &r) < 0)
            (void)getrlimit(RLIMIT_NOFILE, &r);
    }
    if (r.rlim_cur == RLIM_INFINITY)
        return;
    avail = (long)MIN(r.rlim_cur, (rlim_t)G_MAXINT) - FD_RESERVE;
    if (2L * b->max_parallel + b->backlog + 2L * b->max_writers <= avail)
        return;
    b->max_parallel = (int)CLAMP(avail / 8, 1, b->max_parallel);
    b->backlog = (int)CLAMP(avail / 8, 1, b->backlog);
    b->max_writers = (guint)CLAMP(avail / 8, 1, (long)b->max_writers);
    log_verbose("refresh: only %ld file descriptors to spare: %d requests at a time", avail,
                b->max_parallel);
}

/* The pool, the writers' queue and one job per request; the limits fitted
 * to the file descriptors there are. */
static void bulk_init(struct bulk *b, struct refresh_request *reqs, int max_parallel, bool force)
{
    b->max_parallel = MAX(max_parallel, 1);
    b->backlog = FAULT_NUMBER(TEST_BACKLOG_VAR, 0);
    b->slow_writes = b->backlog > 0;
    if (!b->slow_writes)
        b->backlog = WRITE_BACKLOG;
    b->max_writers = WRITERS;
    fit_file_limit(b);
    g_mutex_init(&b->mutex);
    g_cond_init(&b->saved);
    b->answers = g_async_queue_new();
    b->writers = g_ptr_array_new();
    b->multi = http_multi_new(b->max_parallel);
    b->http = http_new(NULL);
    b->jobs = g_new0(struct refresh_job, b->n);
    b->busy = g_array_new(FALSE, FALSE, sizeof(size_t));
    for (size_t i = 0; i < b->n; i++) {
        reqs[i].bulk = b;
        b->jobs[i] = (struct refresh_job){.req = &reqs[i],
                                          .margin = reqs[i].account->refresh_margin,
                                          .force = force,
                                          .lock_fd = -1,
                                          .net_error = TOKEND_ERROR_INIT};
    }
}

/* Send while there are accounts left, never more than the writers can
 * take behind. */
static void bulk_send_all(struct bulk *b)
{
    for (;;) {
        bulk_fill(b);
        http_multi_run(b->multi);
        if (b->next >= b->n || b->stopping)
            break;
        /* Nothing in flight, accounts left: the writers are behind. */
        g_mutex_lock(&b->mutex);
        if (b->writing >= b->backlog)
            log_debug("refresh: %d answers waiting to be saved; the next requests wait for them",
                      b->writing);
        while (b->writing >= b->backlog)
            g_cond_wait(&b->saved, &b->mutex);
        g_mutex_unlock(&b->mutex);
    }
}

/* Every writer finishes the answers it has, then stops. */
static void bulk_join_writers(struct bulk *b)
{
    for (guint k = 0; k < b->writers->len; k++)
        g_async_queue_push(b->answers, b);
    for (guint k = 0; k < b->writers->len; k++)
        g_thread_join(g_ptr_array_index(b->writers, k));
    g_ptr_array_free(b->writers, TRUE);
    g_async_queue_unref(b->answers);
}

static void bulk_free(struct bulk *b)
{
    g_array_free(b->busy, TRUE);
    g_free(b->jobs);
    http_free(b->http);
    http_multi_free(b->multi);
    g_cond_clear(&b->saved);
    g_mutex_clear(&b->mutex);
}

void flow_refresh_many(struct refresh_request *reqs, size_t n, int max_parallel, bool force)
{
    struct bulk b = {.n = n, .apps = flow_app_run_new(force)};
    sigset_t old;

    /* Before any thread starts, so that every thread holds them too. */
    hold_termination(&old);
    bulk_init(&b, reqs, max_parallel, force);
    bulk_send_all(&b);
    bulk_join_writers(&b);
    /* Every answer is saved: a pending signal acts here. */
    release_termination(&old);
    /* Accounts another tokend was refreshing: wait for it, then decide. */
    for (guint k = 0; k < b.busy->len; k++) {
        struct refresh_request *req = &reqs[g_array_index(b.busy, size_t, k)];
        flow_refresh(req->account, req->account->refresh_margin, force, &req->outcome, &req->error);
    }
    bulk_free(&b);
    flow_app_run_free(b.apps);
}
