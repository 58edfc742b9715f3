#pragma once
/* System mode: the broker's protocol, and the reader's side of it.  A
 * reader whose token is stale asks the system broker (a tokend running as
 * the service user behind the unix socket RUNTIME_DIR/broker) to refresh
 * the account's token file:
 *
 *     request:  "refresh ACCOUNT\n"      (ACCOUNT: an account name, so at
 *                                          most BROKER_REQUEST_MAX bytes)
 *     answer:   "STATUS REASON\n"         (STATUS: 0 done, else an exit
 *                                          status of tokend(1); REASON one
 *                                          printable line, never a secret)
 *
 * One request per connection; the token itself never crosses the socket:
 * the reader reads the refreshed token file.  The parsers are pure
 * (fuzz_broker). */

#include <glib.h>
#include "tokend/error.h"

/* "refresh " + the longest account name + "\n". */
#define BROKER_REQUEST_MAX 73
#define BROKER_ANSWER_MAX 256
#define BROKER_REASON_MAX 200
/* How long a reader waits for the answer: the broker's refresh is bounded
 * by its HTTP timeouts; a reader that gives up retries at its next poll. */
#define BROKER_TIMEOUT_MS 20000

/* The request's account name (a copy), from exactly one request line of
 * len bytes (newline included); NULL when it is anything else. */
char *broker_parse_request(const char *buf, size_t len);
/* The answer line for status and reason (made one printable line, cut to
 * BROKER_REASON_MAX). */
char *broker_answer_line(int status, const char *reason);
/* An answer line of len bytes (newline included): 0 with *status (0-255)
 * and *reason, or -1 when it is not one. */
int broker_parse_answer(const char *buf, size_t len, int *status, char **reason);
/* The socket's path: RUNTIME_DIR/broker. */
char *broker_socket_path(void);

/* Read one request line from fd within timeout_ms: the account name, or
 * NULL with e set (64 malformed or oversized, 75 silent or gone). */
char *broker_read_request(int fd, int timeout_ms, struct tokend_error *e);
/* The reader's side: ask the broker to refresh account, waiting at most
 * timeout_ms in all; 0 when it says the token file is fresh, else -1 with
 * e set to 75 (the broker is down, slow, refused or failed: a mail client
 * retries at its next poll), the broker's reason in the message. */
int broker_request_refresh(const char *account, int timeout_ms, struct tokend_error *e);
