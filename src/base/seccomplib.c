#include "tokend/dynlib.h"
#include "tokend/seccomplib.h"

#define SYM(field, name) DYNLIB_SYMBOL(struct seccomplib, field, name)

static const struct dynlib_symbol symbols[] = {
    SYM(init, seccomp_init),         SYM(release, seccomp_release),
    SYM(attr_set, seccomp_attr_set), SYM(rule_add, seccomp_rule_add),
    SYM(load, seccomp_load),         SYM(syscall_resolve_name, seccomp_syscall_resolve_name),
};

static struct seccomplib table;
static struct dynlib lib = DYNLIB_INIT("libseccomp.so.2", symbols, &table,
                                       "install libseccomp (Debian: libseccomp2)", NULL);

const struct seccomplib *seccomplib_load(struct tokend_error *e)
{
    return dynlib_get(&lib, e);
}
