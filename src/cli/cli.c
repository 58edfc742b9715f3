#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tokend/cli.h"
#include "tokend/error.h"

/* Each command's lines in the help: its synopses with what it does (as
 * `tokend --help` lists it), then its own options (`tokend VERB --help`). */
struct verb_help {
    const char *name;
    const char *synopsis;
    const char *options;
};

static const struct verb_help verb_help[] = {
    {"add",
     "  add EMAIL [ACCOUNT] [--client-id ID | --client thunderbird] [--no-signin]\n"
     "                        detect the provider of an address, add the account to\n"
     "                        the configuration, sign in and check the mail servers\n"
     "  add --app-only EMAIL [ACCOUNT] --client-id ID --tenant TENANT\n"
     "      (--certificate FILE --key FILE | --client-secret-file FILE\n"
     "       | --service-account-file FILE)\n"
     "                        an app-only account (no person signs in): mint a first\n"
     "                        token, check, and print the administrator's setup\n",
     "  --client-id ID        your own registration of tokend at the provider\n"
     "  --client thunderbird  Thunderbird's public client (Microsoft)\n"
     "  --client-secret-file FILE\n"
     "                        the client secret of --client-id (Google)\n"
     "  --provider microsoft|google\n"
     "                        skip the detection\n"
     "  --tenant TENANT       the Microsoft 365 tenant\n"
     "  --issuer URL          the issuer autoconfig may name on this machine or over http\n"
     "  --store KIND          where to keep the refresh token\n"
     "  --device              sign in with the device code flow\n"
     "  --no-browser          only print the sign-in address\n"
     "  --no-signin           only write the account\n"
     "  --app-only            an account of an app, not of a person (no sign-in)\n"
     "  --certificate FILE    the app's certificate (PEM), with --key FILE its key\n"
     "  --key FILE            the certificate's private key (PEM)\n"
     "  --service-account-file FILE\n"
     "                        a Google service account's JSON key\n"
     "  --subject MAILBOX     the mailbox a service account acts for\n"
     "  --scopes SCOPES       the app's scopes, when not the provider's\n"},
    {"obtain",
     "  obtain ACCOUNT [--no-browser] [--manual] [--device]\n"
     "                        sign in once in the browser and store the refresh token\n",
     "  --no-browser          only print the sign-in address\n"
     "  --manual              paste the address the sign-in ended on, no listener\n"
     "  --device              the device code flow, for a machine without a browser\n"},
    {"refresh",
     "  refresh [ACCOUNT...] [--force]\n"
     "                        refresh access tokens that expire soon (for a timer)\n",
     "  --force               refresh whether or not the tokens expire soon\n"},
    {"token",
     "  token ACCOUNT [--format raw|xoauth2|oauthbearer] [--service imap|smtp]\n"
     "                        print a valid access token (for mutt, msmtp, isync);\n"
     "                        --service picks the host and port of xoauth2/oauthbearer\n"
     "  token ACCOUNT --scope SCOPE... | --set NAME\n"
     "                        a token for other scopes (another resource, such as\n"
     "                        Microsoft Graph) from the same sign-in\n",
     "  --format raw|xoauth2|oauthbearer\n"
     "                        the bare token (default), or a SASL initial response\n"
     "  --service imap|smtp   whose host and port the SASL response names (imap)\n"
     "  --scope SCOPE         a token for these scopes (repeat for more)\n"
     "  --set NAME            a token for a set of the account's token_sets\n"},
    {"status",
     "  status [ACCOUNT...] [--json | --check]\n"
     "                        show accounts, stores, expiry and whether sign-in is needed\n",
     "  --json                a JSON array, one object per account\n"
     "  --check               a monitoring plugin's answer: exit 0 OK, 1 WARNING, 2 CRITICAL,\n"
     "                        3 UNKNOWN, and one line naming the accounts in trouble\n"},
    {"logout",
     "  logout ACCOUNT        forget the account's tokens (revoking them where possible)\n", NULL},
    {"check",
     "  check ACCOUNT [--imap] [--smtp]\n"
     "                        log in to the mail servers with the token, as a test\n",
     "  --imap                the IMAP server only\n"
     "  --smtp                the SMTP server only\n"},
    {"tunnel",
     "  tunnel ACCOUNT [--pop3] [HOST [PORT]]\n"
     "                        log in to IMAP (or POP3) and hand the session to a mail\n"
     "                        client on stdin/stdout (fetchmail plugin, mutt tunnel)\n",
     "  --pop3                POP3 instead of IMAP\n"},
    {"relay",
     "  relay [--listen ADDR:PORT]... smtp|imap|pop3\n"
     "                        serve a local program that only knows passwords: SMTP,\n"
     "                        IMAP or POP3 on stdin/stdout (socket activation), logged\n"
     "                        in upstream with the account's token\n",
     "  --listen ADDR:PORT    accept on this address (repeatable), one process per\n"
     "                        connection; other than loopback only with TLS and\n"
     "                        relay_password_hash\n"
     "  --max-sessions N      at most N sessions at once with --listen (20)\n"
     "  --timeout SECONDS     drop a client silent this long (300)\n"
     "  --tls starttls|implicit\n"
     "                        TLS when the client asks (STARTTLS, the default) or from\n"
     "                        the first byte (ports 465, 993, 995)\n"},
    {"relay-password",
     "  relay-password ACCOUNT\n"
     "                        read a password (terminal or stdin) and print the\n"
     "                        relay_password_hash line for clients on other machines\n",
     NULL},
    {"broker",
     "  broker [--listen PATH [--group GROUP]]\n"
     "                        system mode: refresh an account's token file for a reader\n"
     "                        that asks on the broker socket (one request on stdin,\n"
     "                        socket activation)\n",
     "  --listen PATH         accept on this unix socket (empty: /run/tokend/broker),\n"
     "                        one process per connection\n"
     "  --group GROUP         the group that may connect (mode 0660; default tokend's)\n"
     "  --max-sessions N      at most N requests at once with --listen (16)\n"},
    {"snippet",
     "  snippet ACCOUNT CLIENT\n"
     "                        print a configuration for a mail client (fetchmail,\n"
     "                        fetchmail7, mutt, msmtp, mbsync, offlineimap, getmail...)\n",
     NULL},
    {"migrate",
     "  migrate ACCOUNT --store file|secret-service|command\n"
     "                        move the refresh token to the store the config now names\n",
     "  --store KIND          the store to move to (as the configuration says)\n"},
    {"import",
     "  import ACCOUNT --from FORMAT FILE [--force] [--pizauth-account NAME]\n"
     "                        take the refresh token of fetchmail-oauth2, mutt-oauth2,\n"
     "                        oama, pizauth (its dump) or email-oauth2-proxy, proven by\n"
     "                        one refresh\n"
     "  import ACCOUNT --key FILE\n"
     "                        keep an app-only account's private key (PEM) in its store,\n"
     "                        checked against its certificate first\n"
     "  import ACCOUNT --secret FILE|-\n"
     "                        keep an app-only account's client secret in its store\n",
     "  --from FORMAT         fetchmail-oauth2, mutt-oauth2, oama, email-oauth2-proxy\n"
     "                        or pizauth\n"
     "  --force               replace a refresh token already stored\n"
     "  --pizauth-account NAME\n"
     "                        the account's name in pizauth's configuration\n"
     "  --key FILE            the private key to keep (only its owner may read FILE)\n"
     "  --secret FILE|-       the client secret to keep, one line (only its owner may\n"
     "                        read FILE; -: standard input, the terminal without echo)\n"},
};

static const char usage_head[] =
    "Usage: tokend [--system] [-c FILE] [-v] [-q] COMMAND ...\n"
    "\n"
    "Gets OAuth2 access tokens for mail clients (fetchmail, mutt, msmtp, isync).\n"
    "\n"
    "Commands:\n";

static const char usage_tail[] =
    "\n"
    "Options:\n"
    "  -c, --config FILE     configuration file (default $XDG_CONFIG_HOME/tokend/config)\n"
    "      --system          the mail host's tokend: /etc/tokend/config and accounts.d,\n"
    "                        state in /var/lib/tokend, token files in /run/tokend\n"
    "  -v, --verbose         say more (twice for debugging); secrets are never shown\n"
    "  -q, --quiet           only errors\n"
    "  -h, --help            this help; after a COMMAND, that command's\n"
    "  -V, --version         version\n"
    "\n"
    "Exit status: 0 ok, 64 usage, 65 bad server response, 69 keyring unavailable,\n"
    "73 cannot write files, 75 try later, 77 sign-in needed, 78 configuration.\n"
    "See tokend(1) and tokend.conf(5).\n";

void cli_print_usage(void)
{
    fputs(usage_head, stdout);
    for (size_t i = 0; i < G_N_ELEMENTS(verb_help); i++)
        fputs(verb_help[i].synopsis, stdout);
    fputs(usage_tail, stdout);
}

bool cli_print_verb_usage(const char *verb)
{
    for (size_t i = 0; i < G_N_ELEMENTS(verb_help); i++) {
        const struct verb_help *h = &verb_help[i];
        if (strcmp(h->name, verb) != 0)
            continue;
        printf("Usage: tokend [-c FILE] [-v] [-q] %s ...\n\n%s\nOptions:\n%s", h->name, h->synopsis,
               h->options ? h->options : "");
        printf("  -h, --help            this help\n\n"
               "The global options go before %s: see tokend --help, and tokend(1).\n",
               h->name);
        return true;
    }
    return false;
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    g_autofree char *text = NULL;

    va_start(ap, fmt);
    text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "tokend: %s; see tokend --help\n", text);
    return TOKEND_EX_USAGE;
}

/* What getopt refused, as a usage error (printed by the caller).  optopt
 * is the option's letter, or 0 for an unknown long option. */
static void note_bad_option(struct cli_globals *g, int c, char **argv)
{
    const char *arg = argv[optind - 1];
    bool is_long = g_str_has_prefix(arg, "--");
    g_autofree char *name =
        is_long ? g_strndup(arg, strcspn(arg, "=")) : g_strdup_printf("-%c", optopt);

    g_free(g->error);
    if (c == ':')
        g->error = g_strdup_printf("option %s needs a value", name);
    else if (is_long && optopt)
        g->error = g_strdup_printf("option %s takes no value", name);
    else
        g->error = g_strdup_printf("unknown option %s", name);
}

int cli_parse_globals(int argc, char **argv, struct cli_globals *g)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"system", no_argument, NULL, 'S'},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(g, 0, sizeof(*g));
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:c:vqhV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            g->config_path = optarg;
            break;
        case 'v':
            g->verbosity++;
            break;
        case 'q':
            g->quiet = true;
            break;
        case 'h':
            g->help = true;
            break;
        case 'V':
            g->version = true;
            break;
        case 'S':
            g->system = true;
            break;
        default:
            note_bad_option(g, c, argv);
            return -1;
        }
    }
    g->command_index = optind;
    return 0;
}

void cli_globals_clear(struct cli_globals *g)
{
    g_clear_pointer(&g->error, g_free);
}
