#pragma once
/* Starting another program: the one way tokend runs a child (the browser,
 * notify_cmd, the store commands, gpg).
 *
 * - argv only, the program looked up in PATH, never a shell: a configured
 *   command that wants one says `sh -c` itself.
 * - Standard input, output and error are each chosen by the caller: a pipe,
 *   /dev/null, or tokend's stderr (the log).  Never tokend's own stdin or
 *   stdout: those may be a protocol stream (the tunnel's IMAP session, the
 *   token a script reads).
 * - No other fd reaches the child; its signal dispositions are the defaults
 *   and its signal mask is empty, whatever tokend's are.
 * - A run is bounded: past its time the child's process group gets
 *   SIGTERM, then SIGKILL; stdout is capped (more stops the child), stderr
 *   is kept up to a cap and the rest dropped.  Input is fed and output read
 *   together, so that neither side can block the other.
 * - What is read lands in SecStr, wiped when the result is cleared.
 * - No signal disposition of tokend's changes; SIGPIPE is blocked in the
 *   calling thread while it feeds a pipe. */

#include <stdbool.h>
#include <stddef.h>

#include "tokend/error.h"
#include "tokend/secstr.h"

enum spawn_io {
    SPAWN_IO_NULL, /* /dev/null: the default */
    SPAWN_IO_PIPE, /* stdin: fed from input; stdout, stderr: read into the result */
    SPAWN_IO_LOG,  /* tokend's stderr, where its log goes (stdout and stderr only) */
};

enum spawn_end {
    SPAWN_END_EXITED,    /* code is its exit status */
    SPAWN_END_SIGNALLED, /* code is the signal that ended it */
    SPAWN_END_TIMED_OUT, /* it outlived timeout_ms and was stopped */
    SPAWN_END_TOO_MUCH,  /* it printed more than out_max and was stopped */
};

typedef struct spawn_options {
    const char *what;        /* for messages: "the store_get command pass", "gpg" */
    const char *const *argv; /* argv[0] is looked up in PATH */
    const char *const *env;  /* NULL: tokend's own environment */
    enum spawn_io in, out, err;
    const SecStr *input; /* in = SPAWN_IO_PIPE: written, then the pipe closed */
    size_t out_max;      /* out = SPAWN_IO_PIPE; 0: SPAWN_OUT_MAX */
    size_t err_max;      /* err = SPAWN_IO_PIPE; 0: SPAWN_ERR_MAX */
    int timeout_ms;      /* > 0 */
    /* Stay in tokend's process group, for a child that may talk to the
     * terminal (gpg asking for a passphrase): only it is stopped then. */
    bool keep_group;
} SpawnOptions;

#define SPAWN_OUT_MAX 65536
#define SPAWN_ERR_MAX 4096
/* Between SIGTERM and SIGKILL when a run is stopped. */
#define SPAWN_KILL_GRACE_MS 1000

typedef struct spawn_result {
    char *what;
    enum spawn_end end;
    int code;
    int timeout_ms; /* the bounds, for the message */
    size_t out_max;
    SecStr *out; /* what it printed (out = SPAWN_IO_PIPE), never NULL */
    SecStr *err; /* its stderr (err = SPAWN_IO_PIPE), never NULL */
} SpawnResult;

#define SPAWN_RESULT_INIT                                                                          \
    {                                                                                              \
        0                                                                                          \
    }

/* Run a child to its end (or its bound).  -1 when it could not be started
 * ("WHAT cannot be run: ..."); 0 when it ran, however it ended: see r. */
int spawn_run(const SpawnOptions *o, SpawnResult *r, struct tokend_error *e);
/* Start a child that outlives the call (the browser): its own session, not
 * waited for (a thread reaps it).  Only SPAWN_IO_NULL and SPAWN_IO_LOG. */
int spawn_detached(const SpawnOptions *o, struct tokend_error *e);
/* Exited with status 0. */
bool spawn_succeeded(const SpawnResult *r);
/* How it ended as one error line: "WHAT exited with status 3", "WHAT was
 * killed by signal 9 (Killed)", "WHAT did not finish within 30 seconds and
 * was stopped" (always TOKEND_EX_TEMPFAIL), "WHAT printed more than N bytes
 * and was stopped"; then ": SAID" when said is given (redacted words of
 * its stderr).  status for all but a timeout.  Returns -1. */
int spawn_error(struct tokend_error *e, int status, const SpawnResult *r, const char *said);
void spawn_result_clear(SpawnResult *r);
