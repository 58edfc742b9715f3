#include "tokend/cryptlib.h"
#include "tokend/dynlib.h"

#define SYM(field, name) DYNLIB_SYMBOL(struct cryptlib, field, name)

static const struct dynlib_symbol symbols[] = {
    SYM(rn, crypt_rn),
    SYM(gensalt_rn, crypt_gensalt_rn),
    SYM(checksalt, crypt_checksalt),
};

static struct cryptlib table;
static struct dynlib lib =
    DYNLIB_INIT("libcrypt.so.1", symbols, &table, "install libxcrypt (Debian: libcrypt1)", NULL);

const struct cryptlib *cryptlib_load(struct tokend_error *e)
{
    return dynlib_get(&lib, e);
}
