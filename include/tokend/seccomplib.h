#pragma once
/* libseccomp, loaded only when a tunnel or relay session enters its
 * sandbox (sandbox.c), before Landlock takes the file system away: no
 * other run of the engine maps it.  A typed table of the few functions
 * tokend calls, as secretlib.h does. */

#include <seccomp.h>
#include "tokend/error.h"

struct seccomplib {
    __typeof__(seccomp_init) *init;
    __typeof__(seccomp_release) *release;
    __typeof__(seccomp_attr_set) *attr_set;
    __typeof__(seccomp_rule_add) *rule_add;
    __typeof__(seccomp_load) *load;
    __typeof__(seccomp_syscall_resolve_name) *syscall_resolve_name;
};

/* Load libseccomp once; NULL (TOKEND_EX_UNAVAILABLE) if it is not
 * installed: the caller must not relay then. */
const struct seccomplib *seccomplib_load(struct tokend_error *e);
