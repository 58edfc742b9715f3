#pragma once
/* One error convention for the whole program: functions return 0 on success
 * or -1 on failure and fill a struct tokend_error.  Lower layers never print;
 * the verb layer prints the error once, as one line. */

#include <stdbool.h>
#include <glib.h>

/* Exit statuses, from sysexits(3); documented in tokend(1). */
enum tokend_status {
    TOKEND_OK = 0,
    TOKEND_EX_USAGE = 64,        /* wrong command line */
    TOKEND_EX_DATAERR = 65,      /* malformed server response or pasted URL */
    TOKEND_EX_UNAVAILABLE = 69,  /* keyring unavailable or locked */
    TOKEND_EX_SOFTWARE = 70,     /* internal error */
    TOKEND_EX_CANTCREAT = 73,    /* cannot write a token, store or state file */
    TOKEND_EX_TEMPFAIL = 75,     /* network, timeout, 5xx, 429: try later */
    TOKEND_EX_NOPERM = 77,       /* sign-in needed, or an administrator */
    TOKEND_EX_CONFIG = 78,       /* configuration error */
    TOKEND_EX_INTERRUPTED = 130, /* stopped by Ctrl-C */
};

struct tokend_error {
    int status;      /* an enum tokend_status; 0 while unset */
    char *message;   /* what happened, one line */
    char *hint;      /* what to do, one line, or NULL */
    char *detail;    /* the server's raw words, redacted (redact.h), shown only with -v */
    int retry_after; /* seconds the server asked us to wait, or 0 */
};

#define TOKEND_ERROR_INIT                                                                          \
    {                                                                                              \
        0, NULL, NULL, NULL, 0                                                                     \
    }

/* Set the error (replacing any earlier one).  Returns -1 so that callers can
 * write `return error_set(e, ...);`.  Text is folded to one printable line. */
int error_set(struct tokend_error *e, int status, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
void error_set_hint(struct tokend_error *e, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
void error_set_detail(struct tokend_error *e, const char *text);
/* Prefix the message with "what: " to give context at a higher layer. */
void error_prefix(struct tokend_error *e, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
void error_clear(struct tokend_error *e);
void error_move(struct tokend_error *dst, struct tokend_error *src);
/* Fold text to one printable line of at most max bytes (UTF-8 kept whole). */
char *error_one_line(const char *text, size_t max);
/* Text read from a file, to show as it is but harmless on a terminal:
 * control and format characters (escape sequences, newlines, bidi
 * overrides) and invalid UTF-8 become \n \r \t \xHH \uHHHH, a backslash
 * \\; everything else is kept. */
char *error_escape(const char *text);
/* "tokend: ACCOUNT: message; hint" on stderr, and the detail with -v. */
void error_print(const struct tokend_error *e, const char *account);
const char *error_status_name(int status);
