#include "tokend/dynlib.h"
#include "tokend/seccomplib.h"

#define LIBSECCOMP_SONAME "libseccomp.so.2"

#define SYM(field, name) DYNLIB_SYMBOL(struct seccomplib, field, name)

static const struct dynlib_symbol symbols[] = {
    SYM(init, seccomp_init),         SYM(release, seccomp_release),
    SYM(attr_set, seccomp_attr_set), SYM(rule_add, seccomp_rule_add),
    SYM(load, seccomp_load),         SYM(syscall_resolve_name, seccomp_syscall_resolve_name),
};

static struct seccomplib lib;
static const char *load_error;

static gpointer load(gpointer unused)
{
    (void)unused;
    if (dynlib_load(LIBSECCOMP_SONAME, symbols, G_N_ELEMENTS(symbols), &lib, &load_error) < 0)
        return NULL;
    return &lib;
}

const struct seccomplib *seccomplib_load(struct tokend_error *e)
{
    static GOnce once = G_ONCE_INIT;
    const struct seccomplib *l = g_once(&once, load, NULL);

    if (!l) {
        error_set(e, TOKEND_EX_UNAVAILABLE, "cannot load %s (%s)", LIBSECCOMP_SONAME,
                  load_error ? load_error : "unknown error");
        error_set_hint(e, "install libseccomp (Debian: libseccomp2)");
    }
    return l;
}
