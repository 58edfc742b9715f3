#pragma once
/* What both binaries do first, before they open a file or hold a secret.
 * Cheap enough for the launcher's hot path: a few fcntl, prctl and
 * setrlimit calls. */

#include "tokend/error.h"

/* fds 0, 1 and 2 open, on /dev/null where one was closed (as OpenSSH and
 * systemd do): otherwise the next file tokend opens (a lock, a token
 * file) would become its standard output or error, and get the token
 * printed or log lines written into it.  -1 when /dev/null cannot be
 * opened: the caller exits with e. */
int harden_std_fds(struct tokend_error *e);
/* No core dumps and no ptrace by the user's other processes
 * (PR_SET_DUMPABLE, RLIMIT_CORE 0); SSLKEYLOGFILE dropped, so that
 * neither libcurl (OpenSSL) here nor a child writes the TLS session keys,
 * which decrypt every token on the wire, to the file it names.  -1 when
 * one of them failed (a seccomp filter, an LSM): e says which, and the
 * caller warns once and goes on. */
int harden_process(struct tokend_error *e);
