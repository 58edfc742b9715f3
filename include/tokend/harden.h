#pragma once
/* What both binaries do first, before they can hold a secret. */

/* No core dumps and no ptrace by the user's other processes
 * (PR_SET_DUMPABLE); SSLKEYLOGFILE dropped, so that neither libcurl
 * (OpenSSL) here nor a child writes the TLS session keys, which decrypt
 * every token on the wire, to the file it names.  No syscall beyond
 * prctl and setrlimit: the launcher's hot path runs it. */
void harden_process(void);
