#pragma once
/* DNS lookups tokend needs to set up an account: the MX hosts of a mail
 * domain, through the system resolver (glibc's libresolv, /etc/resolv.conf),
 * each lookup bounded in time whatever resolv.conf or RES_OPTIONS say. */

#include <glib.h>
#include "tokend/error.h"

/* Seconds one lookup may wait for each name server, and tries per server. */
#define DNS_TIMEOUT_SECONDS 2
#define DNS_ATTEMPTS 1
/* At most this many name servers are asked: the bound is their product. */
#define DNS_MAX_SERVERS 2

/* The MX hosts of domain, lower case, without the final dot, best
 * preference first, into *out (a new array, empty when the domain has no MX
 * or does not exist).  A name server that does not answer in time, or
 * answers SERVFAIL, is -1 with TEMPFAIL. */
int dns_mx(const char *domain, GPtrArray **out, struct tokend_error *e);
