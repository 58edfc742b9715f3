/* The command store: the user's own commands keep the refresh token (pass,
 * age, systemd-creds, a script), or an app-only account's private key or
 * client secret.  Each command line is split like a shell would split it
 * and run without one, with TOKEND_ACCOUNT and TOKEND_SECRET (which
 * secret: its kind, such as "refresh_token", "client_key" or
 * "client_secret"; never the secret itself) in its environment, through
 * spawn.h.  The secret travels only on the command's standard input (put)
 * or output (get), never in its arguments or environment.  Every run is
 * bounded in time and in output, and stopped (with its process group) when
 * it outlives the bound.
 *
 * Conventions: get exits 0 and prints the secret, or prints nothing (or
 * only blanks) when nothing is stored; put reads the secret on its
 * standard input; delete removes it.  Any other exit is an error.  A
 * refresh token is one line; a key is PEM, several lines, kept as they
 * are. */

#include <string.h>

#include "tokend/redact.h"
#include "tokend/spawn.h"
#include "tokend/store.h"

#define OUTPUT_MAX_BYTES 65536
#define STDERR_KEEP_BYTES 4096

/* The secrets the commands may keep, and their shape. */
typedef struct command_secret {
    const char *kind;
    const char *title;
    bool multi_line;
} CommandSecret;

static const CommandSecret secrets[] = {
    {STORE_REFRESH_TOKEN, "the refresh token", false},
    {STORE_CLIENT_KEY, "the client key", true},
    {STORE_CLIENT_SECRET, "the client secret", false},
};

typedef struct command_store {
    Store base;
    char *get;
    char *put;
    char *remove;
    int timeout_s;
} CommandStore;

/* The first line of a secret, to recognise it in what a command said. */
static SecStr *first_line(const SecStr *s)
{
    return s && s->len ? secstr_from(s->data, strcspn(s->data, "\r\n")) : NULL;
}

/* The first line the command said on stderr, redacted: a get that failed
 * may still have printed the token it could not deliver, or another one
 * tokend does not know. */
static char *stderr_words(const SpawnResult *r, const SecStr *input)
{
    g_autoptr(SecStr) in = first_line(input);
    g_autoptr(SecStr) out = first_line(r->out);
    g_autoptr(SecStr) line = secstr_from(r->err->data, strcspn(r->err->data, "\r\n"));
    const char *known[3] = {NULL, NULL, NULL};
    g_autofree char *safe = NULL;
    int n = 0;

    if (in && in->len)
        known[n++] = in->data;
    if (out && out->len)
        known[n++] = out->data;
    safe = redact_text(g_strstrip(line->data), known);
    return error_one_line(safe, 200);
}

/* Run one command line; *out gets its standard output when wanted. */
static int command_run(const CommandStore *cs, const char *key, const char *line,
                       const char *account, const CommandSecret *secret, const SecStr *input,
                       SecStr **out, struct tokend_error *e)
{
    g_auto(GStrv) argv = NULL;
    g_auto(GStrv) env = NULL;
    g_autoptr(GError) gerr = NULL;
    g_autofree char *what = NULL, *said = NULL;
    SpawnOptions o = {.in = input ? SPAWN_IO_PIPE : SPAWN_IO_NULL,
                      .out = SPAWN_IO_PIPE,
                      .err = SPAWN_IO_PIPE,
                      .input = input,
                      .out_max = OUTPUT_MAX_BYTES,
                      .err_max = STDERR_KEEP_BYTES,
                      .timeout_ms = cs->timeout_s * 1000};
    SpawnResult r = SPAWN_RESULT_INIT;
    int rc = -1;

    if (!g_shell_parse_argv(line, NULL, &argv, &gerr))
        return error_set(e, TOKEND_EX_CONFIG, "%s: %s", key, gerr->message);
    what = g_strdup_printf("the %s command %s", key, argv[0]);
    o.what = what;
    o.argv = (const char *const *)argv;
    env = g_environ_setenv(g_get_environ(), "TOKEND_ACCOUNT", account, TRUE);
    env = g_environ_setenv(env, "TOKEND_SECRET", secret->kind, TRUE);
    o.env = (const char *const *)env;
    if (spawn_run(&o, &r, e) < 0)
        goto out;
    if (!spawn_succeeded(&r)) {
        said = stderr_words(&r, input);
        spawn_error(e, TOKEND_EX_UNAVAILABLE, &r, said);
        if (r.end != SPAWN_END_TIMED_OUT)
            error_set_hint(e, "check %s in the configuration", key);
        goto out;
    }
    if (out)
        *out = g_steal_pointer(&r.out);
    rc = 0;
out:
    spawn_result_clear(&r);
    return rc;
}

static const CommandSecret *secret_of_kind(const char *kind, struct tokend_error *e)
{
    for (size_t i = 0; i < G_N_ELEMENTS(secrets); i++)
        if (strcmp(kind, secrets[i].kind) == 0)
            return &secrets[i];
    error_set(e, TOKEND_EX_SOFTWARE, "the command store keeps no %s", kind);
    return NULL;
}

/* Only blanks and line ends: the same as nothing. */
static bool only_whitespace(const SecStr *v)
{
    for (size_t i = 0; i < v->len; i++)
        if (!strchr(" \t\r\n", v->data[i]) || !v->data[i])
            return false;
    return true;
}

/* One line of visible characters (RFC 6749 VSCHAR), the newline after it
 * taken off. */
static bool one_token_line(SecStr *v)
{
    if (v->len && v->data[v->len - 1] == '\n')
        v->data[--v->len] = '\0';
    if (v->len && v->data[v->len - 1] == '\r')
        v->data[--v->len] = '\0';
    for (size_t i = 0; i < v->len; i++)
        if ((unsigned char)v->data[i] < 0x20 || (unsigned char)v->data[i] > 0x7e)
            return false;
    return true;
}

static int command_get(Store *s, const char *account, const char *kind, SecStr **out,
                       struct tokend_error *e)
{
    CommandStore *cs = (CommandStore *)s;
    const CommandSecret *secret = secret_of_kind(kind, e);
    g_autoptr(SecStr) v = NULL;

    if (!secret || command_run(cs, "store_get", cs->get, account, secret, NULL, &v, e) < 0)
        return -1;
    /* Said like an empty answer by a store that prints a newline for
     * nothing; never a secret to use. */
    if (!v || only_whitespace(v))
        return 0;
    if (!secret->multi_line && !one_token_line(v))
        return error_set(e, TOKEND_EX_DATAERR,
                         "the store_get command printed something "
                         "other than one line with %s",
                         secret->title);
    if (v->len)
        *out = g_steal_pointer(&v);
    return 0;
}

static int command_put(Store *s, const char *account, const char *kind, const char *label,
                       const SecStr *value, struct tokend_error *e)
{
    CommandStore *cs = (CommandStore *)s;
    const CommandSecret *secret = secret_of_kind(kind, e);
    g_autoptr(SecStr) text = NULL;

    (void)label;
    if (!secret)
        return -1;
    /* Text ends with a line end: what pass insert --multiline and a
     * shell's read expect. */
    text = secstr_dup(value);
    if (!text->len || text->data[text->len - 1] != '\n')
        secstr_append(text, "\n", 1);
    return command_run(cs, "store_put", cs->put, account, secret, text, NULL, e);
}

static int command_remove(Store *s, const char *account, const char *kind, struct tokend_error *e)
{
    CommandStore *cs = (CommandStore *)s;
    const CommandSecret *secret = secret_of_kind(kind, e);

    if (!secret || command_run(cs, "store_delete", cs->remove, account, secret, NULL, NULL, e) < 0)
        return -1;
    return 1;
}

static void command_free(Store *s)
{
    CommandStore *cs = (CommandStore *)s;

    g_free(cs->get);
    g_free(cs->put);
    g_free(cs->remove);
    g_free(cs);
}

static const struct store_ops command_ops = {
    .kind = STORE_KIND_COMMAND,
    .get = command_get,
    .put = command_put,
    .remove = command_remove,
    .free = command_free,
};

Store *store_command_new(const char *get, const char *put, const char *remove, int timeout_s,
                         struct tokend_error *e)
{
    CommandStore *cs;

    if (!get || !put || !remove) {
        error_set(e, TOKEND_EX_CONFIG,
                  "the command store needs store_get, store_put and "
                  "store_delete");
        return NULL;
    }
    cs = g_new0(CommandStore, 1);
    cs->base.ops = &command_ops;
    cs->get = g_strdup(get);
    cs->put = g_strdup(put);
    cs->remove = g_strdup(remove);
    cs->timeout_s = timeout_s > 0 ? timeout_s : 30;
    return &cs->base;
}
