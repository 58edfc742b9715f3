/* tokend migrate (the refresh token to another store) and tokend import
 * (another tool's sign-in). */

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tokend/verbs.h"
#include "verbs_internal.h"
#include "tokend/add.h"
#include "tokend/config.h"
#include "tokend/flow.h"
#include "tokend/flow_import.h"
#include "tokend/import.h"
#include "tokend/log.h"
#include "tokend/mailcheck.h"
#include "tokend/notify.h"
#include "tokend/paths.h"
#include "tokend/schedule.h"
#include "tokend/snippet.h"
#include "tokend/state.h"
#include "tokend/status.h"
#include "tokend/tokenformat.h"
#include "tokend/tokenset.h"
#include "tokend/tunnel.h"

static bool store_matches_config(const Account *a, const char *target)
{
    int kind = store_kind_from_name(target);

    if (a->store == STORE_KIND_AUTO)
        return kind >= 0 && !store_kind_info(kind)->needs_account;
    return (int)a->store == kind;
}

static bool store_kind_place(const char *name)
{
    int kind = store_kind_from_name(name);

    return kind >= 0 && store_kind_info(kind)->is_place;
}

static int migrate_usage(const char *bad)
{
    g_autofree char *places = store_kind_names(true);
    g_auto(GStrv) names = g_strsplit(places, ", ", -1);
    g_autofree char *bars = g_strjoinv("|", names);

    return cli_usage_error("migrate: bad option %s (--store %s)", bad, bars);
}

int verb_migrate(struct verb_ctx *ctx)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(GString) done = g_string_new(NULL);
    g_autofree char *again = NULL;
    const char *target = NULL;
    const Account *a;
    int c, status = 0;

    VERB_GETOPT(ctx, "s:", opts, c)
    {
        if (c != 's' || !store_kind_place(optarg))
            return migrate_usage(ctx->argv[optind - 1]);
        target = optarg;
    }
    if (ctx->argc - optind != 1 || !target)
        return cli_usage_error("%s", "migrate takes one ACCOUNT and --store KIND");
    if (!(a = verb_account(ctx, &status)))
        return status;
    if (!store_matches_config(a, target)) {
        again = config_command(a, "migrate");
        fprintf(stderr,
                "tokend: %s: the configuration says store = %s; set store = %s in "
                "[account %s] of %s, then run: %s --store %s\n",
                a->name, store_kind_name(a->store), target, a->name, ctx->cfg->path, again, target);
        return TOKEND_EX_CONFIG;
    }
    if (flow_migrate(a, target, done, &e) < 0)
        return verb_fail(&e, a->name);
    fprintf(stderr, "tokend: %s: %s\n", a->name, done->str);
    return 0;
}

/* import: read the other tool's refresh token, then prove and store it. */
static int import_run(const Account *a, int format, const char *file, const char *pizauth,
                      bool force)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    struct import_outcome out = {0};
    g_autoptr(ImportFound) found = NULL;
    /* pizauth names its accounts in its own config: by default as here. */
    const char *who = format != IMPORT_FORMAT_PIZAUTH ? a->username : pizauth ? pizauth : a->name;

    if (import_read(format, file, who, import_ask_password, &found, &e) < 0 ||
        flow_import(a, found->refresh_token, found->client_id, force, &out, &e) < 0)
        return verb_fail(&e, a->name);
    fprintf(stderr,
            "tokend: %s: imported from %s; refresh token in the %s store, access "
            "token in %s (valid for %" G_GINT64_FORMAT " min); %s\n",
            a->name, import_format_name(format), out.store, a->token_file, out.expires_in / 60,
            out.rotated ? "the server rotated the refresh token, so the other tool's copy "
                          "no longer works"
                        : "the server did not rotate it: stop the other tool from using it");
    import_outcome_clear(&out);
    schedule_forget();
    return 0;
}

/* import --key: an app-only account's key into its store. */
static int import_key(const Account *a, const char *file)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *store = NULL;

    if (flow_app_import_key(a, file, &store, &e) < 0)
        return verb_fail(&e, a->name);
    fprintf(stderr,
            "tokend: %s: the key from %s matches the account and is kept in the %s store; "
            "%s may be deleted\n",
            a->name, file, store, file);
    return 0;
}

/* import --secret: an app-only account's client secret into its store,
 * from FILE or, for "-", standard input (the terminal without echo). */
static int import_secret(const Account *a, const char *file)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *store = NULL;
    g_autofree char *prompt = g_strdup_printf("Client secret of %s: ", a->name);
    g_autoptr(SecStr) typed = NULL;
    bool in = strcmp(file, "-") == 0;

    if (in && !(typed = import_ask_password(prompt, &e)))
        return verb_fail(&e, a->name);
    if (flow_app_import_secret(a, in ? NULL : file, typed, &store, &e) < 0)
        return verb_fail(&e, a->name);
    if (in)
        fprintf(stderr, "tokend: %s: the client secret is kept in the %s store\n", a->name, store);
    else
        fprintf(stderr,
                "tokend: %s: the client secret from %s is kept in the %s store; %s may be "
                "deleted\n",
                a->name, file, store, file);
    return 0;
}

/* --key FILE or --secret FILE: one ACCOUNT and nothing else. */
static int import_app(struct verb_ctx *ctx, const char *key, const char *secret, bool other)
{
    const Account *a;
    int status = 0;

    if ((key && secret) || other || ctx->argc - optind != 1)
        return cli_usage_error("import --key FILE or --secret FILE takes one ACCOUNT and no other "
                               "option");
    if (!(a = verb_account(ctx, &status)))
        return status;
    return key ? import_key(a, key) : import_secret(a, secret);
}

int verb_import(struct verb_ctx *ctx)
{
    static const struct option opts[] = {
        {"from", required_argument, NULL, 'f'},
        {"force", no_argument, NULL, 'F'},
        {"pizauth-account", required_argument, NULL, 'P'},
        {"key", required_argument, NULL, 'k'},
        {"secret", required_argument, NULL, 'S'},
        {NULL, 0, NULL, 0},
    };
    const Account *a;
    const char *pizauth = NULL, *key = NULL, *secret = NULL;
    bool force = false;
    int c, format = -1, status = 0;

    VERB_GETOPT(ctx, "", opts, c)
    {
        if (c == 'F')
            force = true;
        else if (c == 'P' && *optarg)
            pizauth = optarg;
        else if (c == 'k' && *optarg)
            key = optarg;
        else if (c == 'S' && *optarg)
            secret = optarg;
        else if (c == 'f' && (format = import_format_from_name(optarg)) >= 0)
            continue;
        else
            return cli_usage_error("import: bad option %s (--from %s)", ctx->argv[optind - 1],
                                   import_format_list());
    }
    if (key || secret)
        return import_app(ctx, key, secret, format >= 0 || force || pizauth);
    if (ctx->argc - optind != 2 || format < 0)
        return cli_usage_error("import takes ACCOUNT --from FORMAT FILE (FORMAT: %s)",
                               import_format_list());
    if (pizauth && format != IMPORT_FORMAT_PIZAUTH)
        return cli_usage_error("import: --pizauth-account goes with --from pizauth");
    if (!(a = verb_account(ctx, &status)))
        return status;
    return import_run(a, format, ctx->argv[optind + 1], pizauth, force);
}
