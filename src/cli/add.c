#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "add_internal.h"
#include "tokend/add.h"
#include "tokend/claim.h"
#include "tokend/cli.h"
#include "tokend/config.h"
#include "tokend/detect.h"
#include "tokend/fileio.h"
#include "tokend/flow.h"
#include "tokend/log.h"
#include "tokend/paths.h"

#define CONFIG_MAX_BYTES (1024 * 1024)

struct add_options {
    const char *email;
    const char *name;
    const char *client_id;
    const char *client; /* a provider's public client (provider.h public_client) */
    const char *secret_file;
    const char *provider;
    const char *tenant;
    const char *issuer; /* trusted though autoconfig names it on loopback or http */
    const char *store;
    /* --app-only: no person signs in; the app proves itself */
    bool app_only;
    const char *certificate;
    const char *key;
    const char *service_account_file;
    const char *subject;
    const char *scopes;
    bool device;
    bool no_browser;
    bool no_signin;
    enum add_phase phase; /* system mode: add_internal.h */
};

/* The provider whose public client NAME is, or NULL. */
static const struct provider_preset *public_client_provider(const char *name)
{
    const struct provider_preset *p;

    for (size_t i = 0; (p = provider_at(i)) != NULL; i++)
        if (p->public_client && strcmp(p->public_client, name) == 0)
            return p;
    return NULL;
}

static char *public_client_names(void)
{
    GString *names = g_string_new(NULL);
    const struct provider_preset *p;

    for (size_t i = 0; (p = provider_at(i)) != NULL; i++)
        if (p->public_client)
            g_string_append_printf(names, "%s%s", names->len ? ", " : "", p->public_client);
    return g_string_free(names, FALSE);
}

/* The options of --app-only; false for any other. */
static bool app_option(struct add_options *o, int c)
{
    switch (c) {
    case 'A':
        o->app_only = true;
        return true;
    case 'c':
        o->certificate = optarg;
        return true;
    case 'k':
        o->key = optarg;
        return true;
    case 'g':
        o->service_account_file = optarg;
        return true;
    case 'u':
        o->subject = optarg;
        return true;
    case 'o':
        o->scopes = optarg;
        return true;
    }
    return false;
}

/* Options that only --app-only takes, and those it does not take. */
static int check_app_options(const struct add_options *o)
{
    bool app = o->certificate || o->key || o->service_account_file || o->subject || o->scopes;

    if (app && !o->app_only)
        return cli_usage_error("add: %s",
                               "--certificate, --key, --service-account-file, --subject and "
                               "--scopes go with --app-only");
    if (o->app_only && (o->client || o->device || o->no_browser))
        return cli_usage_error("add: %s", "--app-only signs in no person: no --client, --device or "
                                          "--no-browser");
    /* Before anything is looked up: a usage error is said first. */
    if (o->app_only && !o->certificate && !o->key && !o->secret_file && !o->service_account_file)
        return cli_usage_error("add: %s", "no credential for the app; pass --certificate FILE and "
                                          "--key FILE, --client-secret-file FILE, or "
                                          "--service-account-file FILE");
    return 0;
}

static int check_options(const struct add_options *o);

static const struct option add_opts[] = {
    {"client-id", required_argument, NULL, 'i'},
    {"client", required_argument, NULL, 'C'},
    {"client-secret-file", required_argument, NULL, 'S'},
    {"provider", required_argument, NULL, 'p'},
    {"tenant", required_argument, NULL, 't'},
    {"issuer", required_argument, NULL, 'I'},
    {"store", required_argument, NULL, 's'},
    {"device", no_argument, NULL, 'd'},
    {"no-browser", no_argument, NULL, 'n'},
    {"no-signin", no_argument, NULL, 'N'},
    {"app-only", no_argument, NULL, 'A'},
    {"certificate", required_argument, NULL, 'c'},
    {"key", required_argument, NULL, 'k'},
    {"service-account-file", required_argument, NULL, 'g'},
    {"subject", required_argument, NULL, 'u'},
    {"scopes", required_argument, NULL, 'o'},
    {NULL, 0, NULL, 0},
};

static int parse_options(int argc, char **argv, struct add_options *o)
{
    int c;

    for (optind = 0, opterr = 0; (c = getopt_long(argc, argv, "", add_opts, NULL)) != -1;) {
        switch (c) {
        case 'i':
            o->client_id = optarg;
            break;
        case 'C':
            o->client = optarg;
            break;
        case 'S':
            o->secret_file = optarg;
            break;
        case 'p':
            o->provider = optarg;
            break;
        case 't':
            o->tenant = optarg;
            break;
        case 'I':
            o->issuer = optarg;
            break;
        case 's':
            o->store = optarg;
            break;
        case 'd':
            o->device = true;
            break;
        case 'n':
            o->no_browser = true;
            break;
        case 'N':
            o->no_signin = true;
            break;
        default:
            if (app_option(o, c))
                break;
            return cli_usage_error("add: bad option %s", argv[optind - 1]);
        }
    }
    if (argc - optind < 1 || argc - optind > 2)
        return cli_usage_error("add: %s", "add takes EMAIL [ACCOUNT]");
    o->email = argv[optind];
    o->name = argv[optind + 1];
    return check_options(o);
}

static int check_options(const struct add_options *o)
{
    if (o->client && !public_client_provider(o->client)) {
        g_autofree char *known = public_client_names();
        return cli_usage_error("add: unknown --client %s (known: %s)", o->client, known);
    }
    if (o->issuer && o->provider)
        return cli_usage_error("add: %s", "--issuer is for a provider found by autoconfig, not "
                                          "--provider");
    if (o->client && o->client_id)
        return cli_usage_error("add: %s", "give --client-id or --client, not both");
    return check_app_options(o);
}

/* The file as it is (empty when missing), checked as `obtain` reads it. */
static int read_existing(const char *path, const char *name, char **data, size_t *len,
                         struct tokend_error *e)
{
    g_autoptr(Config) cfg = NULL;
    bool missing = false;

    if (fileio_read(path, CONFIG_MAX_BYTES, data, len, &missing, e) < 0) {
        if (!missing)
            return -1;
        error_clear(e);
        *data = g_strdup("");
        *len = 0;
        return 0;
    }
    if (!(cfg = config_parse(*data, *len, path, e)))
        return -1;
    if (config_find(cfg, name)) {
        error_set(e, TOKEND_EX_CANTCREAT, "%s already has an [account %s]", path, name);
        error_set_hint(e, "give another ACCOUNT name, or remove that group first");
        return -1;
    }
    return 0;
}

/* The names --provider takes: the providers with a registration guide. */
static char *given_provider_names(void)
{
    g_autoptr(GPtrArray) names = g_ptr_array_new_null_terminated(4, NULL, TRUE);
    const struct provider_preset *p;

    for (size_t i = 0; (p = provider_at(i)) != NULL; i++)
        if (p->registration_guide)
            g_ptr_array_add(names, (char *)p->name);
    return g_strjoinv(", ", (char **)names->pdata);
}

static Detection *given_provider(const struct add_options *o, struct tokend_error *e)
{
    const struct provider_preset *p = provider_find(o->provider);
    Detection *d;

    if (!p || !p->registration_guide) {
        g_autofree char *names = given_provider_names();
        error_set(e, TOKEND_EX_USAGE,
                  "--provider takes %s (another provider is found through the domain's "
                  "autoconfig)",
                  names);
        return NULL;
    }
    d = g_new0(Detection, 1);
    d->provider = p;
    d->how = g_strdup("--provider");
    d->tenant = g_strdup(p->default_tenant);
    return d;
}

/* An app-only account: the app's client id (a service account file has
 * its own) and one way for the app to prove itself. */
static int choose_app_client(const struct add_options *o, const Detection *d, const char **id,
                             struct tokend_error *e)
{
    const struct provider_preset *p = d->provider;

    *id = o->client_id;
    if (!p->app_grants)
        return error_set(e, TOKEND_EX_USAGE, "%s has no app-only accounts", p->title);
    if (!*id && !o->service_account_file) {
        error_set(e, TOKEND_EX_USAGE, "no client id for the app");
        error_set_hint(e, "pass --client-id ID, the application id of the app%s%s%s",
                       p->registration_guide ? " (see " : "",
                       p->registration_guide ? p->registration_guide : "",
                       p->registration_guide ? ")" : "");
        return -1;
    }
    if (!o->tenant && d->tenant && provider_has_tenant(p) &&
        (g_strcmp0(d->tenant, p->default_tenant) == 0 ||
         g_strcmp0(d->tenant, p->consumer_tenant) == 0)) {
        error_set(e, TOKEND_EX_USAGE, "an app gets its tokens from its own tenant, not %s",
                  d->tenant);
        error_set_hint(e, "pass --tenant TENANT_ID (the Directory (tenant) ID of the app)");
        return -1;
    }
    return 0;
}

/* The client id to use, or an error saying what to pass. */
static int choose_client(const struct add_options *o, const Detection *d, const char **id,
                         struct tokend_error *e)
{
    const struct provider_preset *p = d->provider;

    if (o->app_only)
        return choose_app_client(o, d, id, e);

    const struct provider_preset *owner = o->client ? public_client_provider(o->client) : NULL;

    *id = o->client_id;
    if (o->client && owner != p)
        return error_set(e, TOKEND_EX_USAGE,
                         "--client %s is documented for %s only; register a client with %s and "
                         "pass --client-id",
                         o->client, owner ? owner->title : "another provider", p->title);
    if (o->client)
        *id = p->public_client_id;
    if (!*id) {
        error_set(e, TOKEND_EX_USAGE, "no client id for provider %s", p->name);
        if (!p->registration_guide)
            error_set_hint(e, "pass --client-id ID, the id registered with %s",
                           d->issuer ? d->issuer : d->token_url);
        else
            error_set_hint(e, "pass --client-id ID of your own registration (see %s)%s%s",
                           p->registration_guide, p->public_client ? ", or --client " : "",
                           p->public_client ? p->public_client : "");
        return -1;
    }
    if (p->needs_client_secret && !o->secret_file) {
        error_set(e, TOKEND_EX_USAGE, "%s needs the client secret of your registration", p->title);
        error_set_hint(e, "pass --client-secret-file FILE holding it (see %s)",
                       p->registration_guide ? p->registration_guide : "tokend.conf(5)");
        return -1;
    }
    return 0;
}

static void put(GString *s, const char *key, const char *value)
{
    if (value && *value)
        g_string_append_printf(s, "%s = %s\n", key, value);
}

static void put_port(GString *s, const char *key, int port)
{
    if (port > 0)
        g_string_append_printf(s, "%s = %d\n", key, port);
}

/* A file the option names, as an absolute path (the configuration is
 * read from elsewhere). */
static char *absolute(const char *path)
{
    g_autofree char *cwd = g_get_current_dir();

    return path ? paths_expand(path, cwd) : NULL;
}

/* The grant of an app-only account: a service account's, or client
 * credentials where the provider takes them. */
static const char *app_grant(const struct add_options *o, const struct provider_preset *p)
{
    g_auto(GStrv) grants = g_strsplit(p->app_grants ? p->app_grants : "", " ", -1);

    if (o->service_account_file ||
        !g_strv_contains((const char *const *)grants, "client_credentials"))
        return "jwt_bearer";
    return "client_credentials";
}

/* The keys of an app-only account: its grant and credential.  The scopes
 * of a person's sign-in that detection found are not the app's. */
static void put_app(GString *s, const struct add_options *o, const Detection *d)
{
    g_autofree char *cert = absolute(o->certificate);
    g_autofree char *key = absolute(o->key);
    g_autofree char *sa = absolute(o->service_account_file);

    put(s, "grant", app_grant(o, d->provider));
    put(s, "client_certificate", cert);
    put(s, "client_key", key);
    put(s, "service_account_file", sa);
    if (o->subject && g_ascii_strcasecmp(o->subject, o->email) != 0)
        put(s, "subject", o->subject);
    put(s, "token_url", d->token_url);
    put(s, "scopes", o->scopes);
}

static char *account_text(const struct add_options *o, const Detection *d, const char *name,
                          const char *client_id, const char *secret_file)
{
    GString *s = g_string_new(NULL);

    g_string_append_printf(s, "# added by tokend add %s: %s\n", o->email, d->how);
    if (o->client)
        g_string_append_printf(s, "# client_id: %s\n", d->provider->public_client_note);
    g_string_append_printf(s, "[account %s]\n", name);
    put(s, "provider", d->provider->name);
    put(s, "username", d->username ? d->username : o->email);
    put(s, "client_id", client_id);
    put(s, "client_secret_file", secret_file);
    put(s, "tenant", o->tenant ? o->tenant : d->tenant);
    put(s, "issuer", d->issuer);
    if (o->app_only) {
        put_app(s, o, d);
    } else {
        put(s, "authorize_url", d->authorize_url);
        put(s, "token_url", d->token_url);
        put(s, "scopes", d->scopes);
    }
    put(s, "imap_host", d->imap_host);
    put_port(s, "imap_port", d->imap_port);
    put(s, "smtp_host", d->smtp_host);
    put_port(s, "smtp_port", d->smtp_port);
    put(s, "pop_host", d->pop_host);
    put_port(s, "pop_port", d->pop_port);
    put(s, "store", o->store);
    put(s, "flow", o->device ? "device" : NULL);
    return g_string_free(s, FALSE);
}

/* Concurrent adds to one file must not lose each other's account: the
 * folder (whose inode the rename leaves alone) is locked from the read to
 * the rename. */
static int lock_folder(const char *dir, struct tokend_error *e)
{
    int fd;

    if (!g_file_test(dir, G_FILE_TEST_IS_DIR) && paths_ensure_private_dir(dir, e) < 0)
        return -1;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || flock(fd, LOCK_EX) < 0) {
        if (fd >= 0)
            close(fd);
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot lock %s: %s", dir, g_strerror(errno));
    }
    return fd;
}

static void wipe_string(GString *s)
{
    explicit_bzero(s->str, s->len);
}

/* The file as it is + a separating blank line + the group: checked as
 * `obtain` would read it, then written in one atomic replacement.  The
 * file may hold a client secret: wiped after use. */
static int append_locked(const char *path, const char *name, const char *group,
                         struct tokend_error *e)
{
    g_autofree char *existing = NULL;
    g_autoptr(GString) all = NULL;
    g_autoptr(Config) check = NULL;
    size_t len = 0;
    int r;

    if (read_existing(path, name, &existing, &len, e) < 0)
        return -1;
    all = g_string_new_len(existing, (gssize)len);
    explicit_bzero(existing, len);
    if (len > 0 && all->str[len - 1] != '\n')
        g_string_append_c(all, '\n');
    if (len > 0)
        g_string_append_c(all, '\n');
    g_string_append(all, group);
    check = config_parse(all->str, all->len, path, e);
    r = check ? fileio_write_atomic(path, all->str, all->len, FILEIO_SYNC_DURABLE, e) : -1;
    wipe_string(all);
    return r;
}

static int append_account(const char *path, const char *name, const char *group,
                          struct tokend_error *e)
{
    g_autofree char *dir = g_path_get_dirname(path);
    int fd = lock_folder(dir, e), r;

    if (fd < 0)
        return -1;
    r = append_locked(path, name, group, e);
    close(fd);
    return r;
}

static void print_caveats(const char *name, const struct provider_preset *p)
{
    fprintf(stderr,
            "tokend: %s: using %s (%s) with the redirect %s; its owner may revoke or restrict it "
            "at any time, and an organisation's administrator may have to consent to it first "
            "(AADSTS65001, AADSTS90094); your own registration is sturdier: see %s\n",
            name, p->public_client_note, p->public_client_id, p->default_redirect_uri,
            p->registration_guide);
}

static Detection *detect(const struct add_options *o, const char *name, struct tokend_error *e)
{
    Detection *d = o->provider ? given_provider(o, e) : detect_provider(o->email, o->issuer, e);

    if (d)
        log_info("%s: %s: provider %s", name, d->how, d->provider->name);
    return d;
}

/* System mode, root: the provider from the command line or the table's
 * consumer domains, or NULL (no error) when only the network can tell. */
static Detection *detect_offline(const struct add_options *o, const char *name,
                                 struct tokend_error *e)
{
    Detection *d = NULL;

    if (o->provider)
        d = given_provider(o, e);
    else
        d = detect_known(o->email);
    if (d)
        log_info("%s: %s: provider %s", name, d->how, d->provider->name);
    return d;
}

/* Root's part of a system add: the file from what needs no network (or
 * from the service user's staged text), then the sign-in as that user. */
static int add_as_root(const struct add_options *o, const char *name, struct tokend_error *e)
{
    g_autofree char *staged = NULL, *staged_at = NULL, *text = NULL, *secret = NULL;
    g_autoptr(Detection) d = NULL;
    const char *client_id = NULL;

    if (add_system_staged(name, &staged, &staged_at, e) < 0)
        return -1;
    if (!staged && !(d = detect_offline(o, name, e)))
        return e->status ? -1 : add_system_hand_over(ADD_PHASE_STAGE, e);
    if (d && choose_client(o, d, &client_id, e) < 0)
        return -1;
    secret = absolute(o->secret_file);
    text = d ? account_text(o, d, name, client_id, secret) : NULL;
    if (add_system_install(name, o->email, staged ? staged : text, e) < 0)
        return -1;
    if (staged && unlink(staged_at) < 0)
        log_warn("%s: cannot remove %s: %s", name, staged_at, g_strerror(errno));
    if (o->client && d)
        print_caveats(name, d->provider);
    if (o->no_signin) {
        log_info("%s: %s with: sudo tokend --system obtain %s", name,
                 o->app_only ? "mint the first token" : "sign in", name);
        return 0;
    }
    return add_system_hand_over(ADD_PHASE_SIGNIN, e);
}

static int sign_in(const struct cli_globals *g, const char *path, const struct add_options *o,
                   const char *name, char **check, struct tokend_error *e)
{
    struct obtain_options oo = {.no_browser = o->no_browser, .device = o->device};
    g_autoptr(Config) cfg = config_load(path, e);
    const Account *a;

    if (!cfg)
        return -1;
    if (g->config_path)
        config_set_arg(cfg, g->config_path);
    if (!(a = config_find(cfg, name)))
        return error_set(e, TOKEND_EX_SOFTWARE, "the new account is not in %s", path);
    if (flow_obtain(a, &oo, e) < 0)
        return -1;
    if (config_app_only(a))
        add_app_print_setup(a);
    if (a->imap_host || a->smtp_host)
        *check = g_strdup(name);
    return 0;
}

static int add_account(const struct cli_globals *g, const struct add_options *o, const char *name,
                       char **check, struct tokend_error *e)
{
    g_autofree char *path = paths_config_file(g->config_path);
    /* A link to the configuration is followed: the account goes into its
     * target, and the link stays.  System mode: a file of its own. */
    g_autofree char *target =
        paths_system() ? add_system_target(path, name) : config_target_path(path);
    g_autofree char *existing = NULL;
    g_autofree char *group = NULL;
    g_autofree char *secret = NULL;
    g_autoptr(Detection) d = NULL;
    const char *client_id = NULL;
    size_t len = 0;

    if (o->phase == ADD_PHASE_SIGNIN)
        return sign_in(g, path, o, name, check, e);
    if (paths_system() && add_system_check_unused(path, name, e) < 0)
        return -1;
    if (read_existing(target, name, &existing, &len, e) < 0 ||
        claim_check_folder(target, name, e) < 0)
        return -1;
    explicit_bzero(existing, len);
    if (o->phase == ADD_PHASE_ROOT)
        return add_as_root(o, name, e);
    if (!(d = detect(o, name, e)) || choose_client(o, d, &client_id, e) < 0)
        return -1;
    secret = absolute(o->secret_file);
    group = account_text(o, d, name, client_id, secret);
    if (o->phase == ADD_PHASE_STAGE)
        return add_system_stage(name, group, e);
    if (append_account(target, name, group, e) < 0)
        return -1;
    log_info("%s: added [account %s] to %s", name, name, path);
    if (o->client)
        print_caveats(name, d->provider);
    if (o->no_signin) {
        g_autoptr(Config) cfg = config_load(path, e);
        const Account *a = cfg ? config_find(cfg, name) : NULL;
        g_autofree char *cmd = NULL;
        if (g->config_path && cfg)
            config_set_arg(cfg, g->config_path);
        cmd = a ? config_command(a, "obtain") : NULL;
        log_info("%s: %s with: %s", name, o->app_only ? "mint the first token" : "sign in",
                 cmd ? cmd : "tokend obtain ACCOUNT");
        if (a && o->app_only)
            add_app_print_setup(a);
        error_clear(e);
        return 0;
    }
    return sign_in(g, path, o, name, check, e);
}

static bool is_address(const char *email)
{
    g_autofree char *domain = detect_domain(email);

    return domain != NULL;
}

int add_run(const struct cli_globals *g, int argc, char **argv, char **check)
{
    struct add_options o = {0};
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *name = NULL;
    int status;

    *check = NULL;
    o.phase = add_system_phase();
    if ((status = parse_options(argc, argv, &o)) != 0)
        return status;
    name = o.name ? g_strdup(o.name) : g_ascii_strdown(o.email, -1);
    if (!is_address(o.email))
        return cli_usage_error("add: \"%s\" is not an e-mail address", o.email);
    if (!config_account_name_valid(name))
        return cli_usage_error("add: \"%s\" cannot be an account name (letters, digits and ._@+-, "
                               "at most 64); give ACCOUNT",
                               name);
    if (add_account(g, &o, name, check, &e) < 0) {
        status = e.status ? e.status : TOKEND_EX_SOFTWARE;
        error_print(&e, name);
        error_clear(&e);
        return status;
    }
    return 0;
}
