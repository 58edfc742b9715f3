#pragma once
/* What the verb modules share: verbs.c (the table, the preamble, the short
 * verbs), verbs_token.c (refresh, token), verbs_store.c (migrate, import),
 * verbs_mail.c (check, tunnel).  Included by them only. */

#include <getopt.h>

#include "tokend/cli.h"
#include "tokend/config.h"
#include "tokend/error.h"

struct verb_ctx {
    const struct cli_globals *g;
    Config *cfg;
    int argc;
    char **argv;         /* argv[0] is the verb */
    const char *program; /* tokend's own argv[0] */
};

/* Print the error once ("tokend: ACCOUNT: message; hint") and return its
 * exit status. */
int verb_fail(struct tokend_error *e, const char *account);
/* Load the configuration; 0, or the exit status after printing why. */
int verb_load_config(struct verb_ctx *ctx);
/* The account named, or NULL with *status set after printing why. */
const Account *verb_find_account(struct verb_ctx *ctx, const char *name, int *status);
/* The preamble of a verb on one ACCOUNT (argv[optind]), after its options:
 * the configuration, then the account; NULL with *status set. */
const Account *verb_account(struct verb_ctx *ctx, int *status);

/* System mode, run by a reader of token files: neither root nor the
 * service user (the engine let only token, tunnel and status through). */
bool verb_as_reader(void);
/* What a reader hears for a verb it may not run: 77. */
int verb_refuse_reader(const char *verb);

/* The accounts named (argv[optind...]) or, with none named, all of them;
 * 0, or the exit status after printing why. */
int verb_collect_accounts(struct verb_ctx *ctx, GPtrArray *out);

/* getopt over the verb's own arguments; returns the first operand index. */
#define VERB_GETOPT(ctx, shortopts, longopts, c)                                                   \
    for (optind = 0, opterr = 0;                                                                   \
         ((c) = getopt_long((ctx)->argc, (ctx)->argv, shortopts, longopts, NULL)) != -1;)

int verb_refresh(struct verb_ctx *ctx);
int verb_token(struct verb_ctx *ctx);
int verb_migrate(struct verb_ctx *ctx);
int verb_import(struct verb_ctx *ctx);
int verb_check(struct verb_ctx *ctx);
int verb_tunnel(struct verb_ctx *ctx);
int verb_relay(struct verb_ctx *ctx);
int verb_relay_password(struct verb_ctx *ctx);
int verb_broker(struct verb_ctx *ctx);
