/* dynlib: a library opened at run time, its functions in a table, once. */

#include <string.h>

#include "tokend/dynlib.h"
#include "testutil.h"

/* zlib's, declared here: the test needs no zlib headers. */
struct zlib_table {
    const char *(*version)(void);
    unsigned long (*crc)(unsigned long crc, const unsigned char *buf, unsigned int len);
};

#define SYM(field, name) DYNLIB_SYMBOL(struct zlib_table, field, name)

static const struct dynlib_symbol zlib_symbols[] = {
    SYM(version, zlibVersion),
    SYM(crc, crc32),
};

static const struct dynlib_symbol missing_symbol[] = {
    SYM(version, zlibVersion),
    SYM(crc, tokend_no_such_function),
};

static int inits;

static void count_init(void *table)
{
    g_assert_nonnull(((struct zlib_table *)table)->version);
    inits++;
}

/* zlib is mapped by libcurl anyway; the test does not link it. */
static void test_loads_once(void)
{
    static struct zlib_table table;
    static struct dynlib lib =
        DYNLIB_INIT("libz.so.1", zlib_symbols, &table, "install zlib", count_init);
    struct tokend_error e = TOKEND_ERROR_INIT;
    const struct zlib_table *t = dynlib_get(&lib, &e);

    g_assert_true(t == &table);
    g_assert_null(e.message);
    g_assert_true(g_str_has_prefix(t->version(), "1."));
    g_assert_cmpuint(t->crc(0, (const unsigned char *)"abc", 3), ==, 0x352441c2);
    g_assert_true(dynlib_get(&lib, NULL) == &table);
    g_assert_cmpint(inits, ==, 1);
}

static void test_missing_library(void)
{
    static struct zlib_table table;
    static struct dynlib lib = DYNLIB_INIT("libtokend-not-installed.so.7", zlib_symbols, &table,
                                           "install it (Debian: libnothing7)", count_init);
    struct tokend_error e = TOKEND_ERROR_INIT;
    int before = inits;

    g_assert_null(dynlib_get(&lib, &e));
    g_assert_cmpint(e.status, ==, TOKEND_EX_UNAVAILABLE);
    g_assert_true(g_str_has_prefix(e.message, "cannot load libtokend-not-installed.so.7 ("));
    g_assert_null(strchr(e.message, '\n'));
    g_assert_cmpstr(e.hint, ==, "install it (Debian: libnothing7)");
    error_clear(&e);
    /* Asked again: the same answer, no second attempt, no init. */
    g_assert_null(dynlib_get(&lib, &e));
    g_assert_true(g_str_has_prefix(e.message, "cannot load libtokend-not-installed.so.7 ("));
    g_assert_cmpint(inits, ==, before);
    error_clear(&e);
    g_assert_null(dynlib_get(&lib, NULL));
}

static void test_missing_symbol(void)
{
    static struct zlib_table table;
    static struct dynlib lib =
        DYNLIB_INIT("libz.so.1", missing_symbol, &table, "install zlib", NULL);
    struct tokend_error e = TOKEND_ERROR_INIT;

    g_assert_null(dynlib_get(&lib, &e));
    g_assert_cmpint(e.status, ==, TOKEND_EX_UNAVAILABLE);
    g_assert_cmpstr(e.message, ==, "cannot load libz.so.1 (no tokend_no_such_function in it)");
    error_clear(&e);
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/dynlib/loads-once", test_loads_once);
    g_test_add_func("/dynlib/missing-library", test_missing_library);
    g_test_add_func("/dynlib/missing-symbol", test_missing_symbol);
    return testutil_run();
}
