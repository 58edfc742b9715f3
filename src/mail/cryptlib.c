#include "tokend/cryptlib.h"
#include "tokend/dynlib.h"

#define LIBCRYPT_SONAME "libcrypt.so.1"

#define SYM(field, name) DYNLIB_SYMBOL(struct cryptlib, field, name)

static const struct dynlib_symbol symbols[] = {
    SYM(rn, crypt_rn),
    SYM(gensalt_rn, crypt_gensalt_rn),
    SYM(checksalt, crypt_checksalt),
};

static struct cryptlib lib;
static const char *load_error;

static gpointer load(gpointer unused)
{
    (void)unused;
    if (dynlib_load(LIBCRYPT_SONAME, symbols, G_N_ELEMENTS(symbols), &lib, &load_error) < 0)
        return NULL;
    return &lib;
}

const struct cryptlib *cryptlib_load(struct tokend_error *e)
{
    static GOnce once = G_ONCE_INIT;
    const struct cryptlib *l = g_once(&once, load, NULL);

    if (!l) {
        error_set(e, TOKEND_EX_UNAVAILABLE, "cannot load %s (%s)", LIBCRYPT_SONAME,
                  load_error ? load_error : "unknown error");
        error_set_hint(e, "install libxcrypt (Debian: libcrypt1)");
    }
    return l;
}
