#pragma once
/* libcrypt (libxcrypt's yescrypt), loaded only for the relay's passwords
 * of other machines (relay_tls.c) and `tokend relay-password`: no other
 * run of the engine maps it.  A typed table of the few functions tokend
 * calls, as secretlib.h does. */

#include <crypt.h>
#include "tokend/error.h"

struct cryptlib {
    __typeof__(crypt_rn) *rn;
    __typeof__(crypt_gensalt_rn) *gensalt_rn;
    __typeof__(crypt_checksalt) *checksalt;
};

/* Load libcrypt once; NULL (TOKEND_EX_UNAVAILABLE) if it is not
 * installed. */
const struct cryptlib *cryptlib_load(struct tokend_error *e);
