#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tokend/cli.h"
#include "tokend/error.h"

static const char usage[] =
    "Usage: tokend [-c FILE] [-v] [-q] COMMAND ...\n"
    "\n"
    "Gets OAuth2 access tokens for mail clients (fetchmail, mutt, msmtp, isync).\n"
    "\n"
    "Commands:\n"
    "  add EMAIL [ACCOUNT] [--client-id ID | --client thunderbird] [--no-signin]\n"
    "                        detect the provider of an address, add the account to\n"
    "                        the configuration, sign in and check the mail servers\n"
    "  add --app-only EMAIL [ACCOUNT] --client-id ID --tenant TENANT\n"
    "      (--certificate FILE --key FILE | --client-secret-file FILE\n"
    "       | --service-account-file FILE)\n"
    "                        an app-only account (no person signs in): mint a first\n"
    "                        token, check, and print the administrator's setup\n"
    "  obtain ACCOUNT [--no-browser] [--manual] [--device]\n"
    "                        sign in once in the browser and store the refresh token\n"
    "  refresh [ACCOUNT...] [--force]\n"
    "                        refresh access tokens that expire soon (for a timer)\n"
    "  token ACCOUNT [--format raw|xoauth2|oauthbearer] [--service imap|smtp]\n"
    "                        print a valid access token (for mutt, msmtp, isync);\n"
    "                        --service picks the host and port of xoauth2/oauthbearer\n"
    "  token ACCOUNT --scope SCOPE... | --set NAME\n"
    "                        a token for other scopes (another resource, such as\n"
    "                        Microsoft Graph) from the same sign-in\n"
    "  status [ACCOUNT...] [--json]\n"
    "                        show accounts, stores, expiry and whether sign-in is needed\n"
    "  logout ACCOUNT        forget the account's tokens (revoking them where possible)\n"
    "  check ACCOUNT [--imap] [--smtp]\n"
    "                        log in to the mail servers with the token, as a test\n"
    "  tunnel ACCOUNT [--pop3] [HOST [PORT]]\n"
    "                        log in to IMAP (or POP3) and hand the session to a mail\n"
    "                        client on stdin/stdout (fetchmail plugin, mutt tunnel)\n"
    "  snippet ACCOUNT CLIENT\n"
    "                        print a configuration for a mail client (fetchmail,\n"
    "                        fetchmail7, mutt, msmtp, mbsync, offlineimap, getmail...)\n"
    "  migrate ACCOUNT --store file|secret-service|command\n"
    "                        move the refresh token to the store the config now names\n"
    "  import ACCOUNT --from FORMAT FILE [--force] [--pizauth-account NAME]\n"
    "                        take the refresh token of fetchmail-oauth2, mutt-oauth2,\n"
    "                        oama, pizauth (its dump) or email-oauth2-proxy, proven by\n"
    "                        one refresh\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE     configuration file (default $XDG_CONFIG_HOME/tokend/config)\n"
    "  -v, --verbose         say more (twice for debugging); secrets are never shown\n"
    "  -q, --quiet           only errors\n"
    "  -h, --help            this help (also after any COMMAND)\n"
    "  -V, --version         version\n"
    "\n"
    "Exit status: 0 ok, 64 usage, 65 bad server response, 69 keyring unavailable,\n"
    "73 cannot write files, 75 try later, 77 sign-in needed, 78 configuration.\n"
    "See tokend(1) and tokend.conf(5).\n";

void cli_print_usage(void)
{
    fputs(usage, stdout);
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

int cli_parse_globals(int argc, char **argv, struct cli_globals *g)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
    };
    int c;

    memset(g, 0, sizeof(*g));
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+c:vqhV", opts, NULL)) != -1) {
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
        default:
            fprintf(stderr, "tokend: unknown option %s; see tokend --help\n", argv[optind - 1]);
            return -1;
        }
    }
    g->command_index = optind;
    return 0;
}
