#pragma once
/* Text from elsewhere (a token server's error, a mail server's reply, a
 * store command's stderr) made safe to print: anything shaped like a token
 * is replaced by "[redacted]".  Servers echo what they were sent, so a
 * reply may carry the XOAUTH2 or OAUTHBEARER string (base64 of the access
 * token) or the bearer token itself; a run of token characters long enough
 * to be one, or a quoted secret the caller knows, never reaches a log line
 * or an error message. */

#include <stdbool.h>
#include <stddef.h>

#define REDACTED "[redacted]"

/* Runs of RFC 6750 b64token characters (letters, digits, - . _ ~ + / =)
 * at least this long are redacted when they hold small letters and
 * capitals or digits; shorter runs, and words in capitals, are words,
 * numbers, response codes. */
#define REDACT_MIN_RUN 20

/* A copy of text (NULL as "") with every token-shaped run and every
 * occurrence of a known secret (NULL-terminated list, may be NULL)
 * replaced by REDACTED.  Free with g_free. */
char *redact_text(const char *text, const char *const *known);
/* True when text holds something redact_text would replace. */
bool redact_needed(const char *text, const char *const *known);
