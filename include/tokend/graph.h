#pragma once
/* Microsoft Graph's sendMail with a MIME message: POST
 * {root}/v1.0/users/{sender}/sendMail with the message base64-encoded as
 * the body, `Content-Type: text/plain` and the access token as bearer
 * credentials; Graph answers 202 Accepted with no body, or an HTTP error
 * with `{"error": {"code", "message"}}` (learn.microsoft.com/graph/api/
 * user-sendmail, "Send messages with MIME content", and "Microsoft Graph
 * error responses and resource types").  What each answer means to an
 * SMTP client is graph_smtp_reply's. */

#include <stdbool.h>
#include <stddef.h>

#include "tokend/error.h"
#include "tokend/secstr.h"

/* A request without an upload session is at most 4 MB
 * (learn.microsoft.com/graph/outlook-large-attachments: 3 MB of content in
 * one request, 4 MB for the request); base64 makes 4 bytes of every 3, so
 * the MIME message itself is at most 3 MiB. */
#define GRAPH_REQUEST_MAX 4194304 /* 4 * 1024 * 1024 */
#define GRAPH_MIME_MAX 3145728    /* GRAPH_REQUEST_MAX / 4 * 3, written out for replies */

struct graph_answer {
    long status;     /* the HTTP status, 0 when there was none (e said why) */
    int retry_after; /* Retry-After in seconds, 0 if none */
    char *code;      /* Graph's error code and message, redacted, one line; or NULL */
    char *message;
    char *failure; /* no answer: why (one line), or NULL */
};

/* Send mime (len bytes, at most GRAPH_MIME_MAX) as sender, bounded by
 * timeout_s.  Always fills *ans: a transport failure is status 0 with
 * failure set. */
void graph_send_mail(const char *root, const char *ca_file, const char *sender, const SecStr *token,
                     const char *mime, size_t len, int timeout_s, struct graph_answer *ans);
void graph_answer_clear(struct graph_answer *ans);
/* The reply an SMTP client gets for an answer other than 401 (which the
 * caller retries once with a new token, then answers with
 * graph_token_refused): 202 is 250; 400 554 5.6.0 with Graph's words;
 * 403 550 5.7.1 with what the admin grants; 413 552 5.3.4; 429, 503, 504
 * and no answer at all 451 4.4.x (with the wait Graph asked for);
 * anything else 451 4.3.0, or 554 for other 4xx. */
char *graph_smtp_reply(const struct graph_answer *ans, const char *account);
char *graph_token_refused(const struct graph_answer *ans, const char *account);
