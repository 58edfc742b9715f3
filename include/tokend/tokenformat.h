#pragma once
/* How `tokend token` hands a token over: bare, or as a base64 SASL initial
 * response for XOAUTH2 or OAUTHBEARER (RFC 7628). */

#include "tokend/error.h"
#include "tokend/secstr.h"

enum token_format {
    TOKEN_FORMAT_RAW,
    TOKEN_FORMAT_XOAUTH2,
    TOKEN_FORMAT_OAUTHBEARER,
};

int tokenformat_from_name(const char *name);
/* The line to print (without newline).  host may be NULL (then OAUTHBEARER
 * carries no host and port). */
SecStr *tokenformat_render(enum token_format f, const SecStr *token, const char *user,
                           const char *host, int port, struct tokend_error *e);
