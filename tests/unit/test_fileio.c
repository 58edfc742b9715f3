/* fileio: atomic replacement, capped reads, private files, removal. */

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "tokend/fileio.h"
#include "testutil.h"

static void test_write_atomic(void)
{
    g_autofree char *dir = testutil_mkdir("write");
    g_autofree char *path = g_build_filename(dir, "file", NULL);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autofree char *first = NULL, *second = NULL, *names = NULL;
    gsize len = 0;

    g_assert_cmpint(fileio_write_atomic(path, "first\n", 6, FILEIO_SYNC_DURABLE, &e), ==, 0);
    first = testutil_read(path, &len);
    g_assert_cmpmem(first, len, "first\n", 6);
    g_assert_cmpint(testutil_mode(path), ==, 0600);
    /* Replacing: a loose old file is replaced by a private new one. */
    g_assert_cmpint(chmod(path, 0644), ==, 0);
    g_assert_cmpint(fileio_write_atomic(path, "2nd", 3, FILEIO_SYNC_DURABLE, &e), ==, 0);
    second = testutil_read(path, &len);
    g_assert_cmpmem(second, len, "2nd", 3);
    g_assert_cmpint(testutil_mode(path), ==, 0600);
    /* Nothing left behind but the file itself. */
    names = testutil_list(dir);
    g_assert_cmpstr(names, ==, "file");
    g_assert_cmpint(e.status, ==, 0);
}

static void test_write_empty_and_binary(void)
{
    g_autofree char *dir = testutil_mkdir("binary");
    g_autofree char *path = g_build_filename(dir, "file", NULL);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autofree char *got = NULL, *got2 = NULL;
    gsize len = 1;

    g_assert_cmpint(fileio_write_atomic(path, "", 0, FILEIO_SYNC_DURABLE, &e), ==, 0);
    got = testutil_read(path, &len);
    g_assert_nonnull(got);
    g_assert_cmpuint(len, ==, 0);
    g_assert_cmpint(fileio_write_atomic(path, "a\0b", 3, FILEIO_SYNC_DURABLE, &e), ==, 0);
    got2 = testutil_read(path, &len);
    g_assert_cmpmem(got2, len, "a\0b", 3);
}

static void test_write_fails_cleanly(void)
{
    g_autofree char *dir = testutil_mkdir("fail");
    g_autofree char *missing = g_build_filename(dir, "no-such-folder", "file", NULL);
    g_autofree char *target_dir = g_build_filename(dir, "is-a-folder", NULL);
    g_autofree char *names = NULL;
    g_auto(TokendError) e = TOKEND_ERROR_INIT;

    g_assert_cmpint(fileio_write_atomic(missing, "x", 1, FILEIO_SYNC_DURABLE, &e), ==, -1);
    g_assert_cmpint(e.status, ==, TOKEND_EX_CANTCREAT);
    testutil_assert_contains(e.message, missing);
    g_assert_false(g_file_test(missing, G_FILE_TEST_EXISTS));
    /* The rename fails: the temporary file must go. */
    g_assert_cmpint(g_mkdir(target_dir, 0700), ==, 0);
    g_assert_cmpint(fileio_write_atomic(target_dir, "x", 1, FILEIO_SYNC_DURABLE, &e), ==, -1);
    g_assert_cmpint(e.status, ==, TOKEND_EX_CANTCREAT);
    names = testutil_list(dir);
    g_assert_cmpstr(names, ==, "is-a-folder");
    g_assert_true(g_file_test(target_dir, G_FILE_TEST_IS_DIR));
}

static void test_read_cap(void)
{
    static const struct {
        size_t size, cap;
        bool ok;
    } cases[] = {
        {0, 0, true},  {0, 10, true},       {10, 10, true},     {11, 10, false},
        {1, 0, false}, {5000, 4096, false}, {4096, 4096, true},
    };
    g_autofree char *dir = testutil_mkdir("cap");
    g_autofree char *path = g_build_filename(dir, "file", NULL);

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autofree char *data = g_malloc(cases[i].size + 1);
        g_autofree char *out = NULL;
        size_t out_len = 12345;
        bool missing = true;

        memset(data, 'x', cases[i].size);
        testutil_write(path, data, (gssize)cases[i].size, 0600);
        g_test_message("case %zu", i);
        if (cases[i].ok) {
            g_assert_cmpint(fileio_read(path, cases[i].cap, &out, &out_len, &missing, &e), ==, 0);
            g_assert_cmpmem(out, out_len, data, cases[i].size);
            g_assert_cmpint(out[out_len], ==, '\0');
            g_assert_false(missing);
        } else {
            g_assert_cmpint(fileio_read(path, cases[i].cap, &out, &out_len, &missing, &e), ==, -1);
            g_assert_null(out);
            g_assert_cmpint(e.status, ==, TOKEND_EX_CANTCREAT);
            testutil_assert_contains(e.message, "larger than");
            g_assert_false(missing);
        }
    }
}

static void test_read_missing(void)
{
    g_autofree char *dir = testutil_mkdir("missing");
    g_autofree char *path = g_build_filename(dir, "nope", NULL);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(SecStr) secret = NULL;
    char *out = NULL;
    bool missing = false;

    g_assert_cmpint(fileio_read(path, 10, &out, NULL, &missing, &e), ==, -1);
    g_assert_true(missing);
    g_assert_nonnull(e.message);
    missing = false;
    g_assert_cmpint(fileio_read_secret(path, 10, &secret, &missing, &e), ==, -1);
    g_assert_true(missing);
    g_assert_null(secret);
    /* Without a missing flag it is an error all the same. */
    g_assert_cmpint(fileio_read(path, 10, &out, NULL, NULL, &e), ==, -1);
    g_assert_null(out);
}

static void test_read_secret(void)
{
    g_autofree char *dir = testutil_mkdir("secret");
    g_autofree char *path = g_build_filename(dir, "secret", NULL);
    g_autofree char *link = g_build_filename(dir, "link", NULL);
    g_autofree char *sub = g_build_filename(dir, "sub", NULL);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(SecStr) s = NULL;
    SecStr *none = NULL;
    bool missing = true;

    testutil_write(path, "hunter2", -1, 0600);
    g_assert_cmpint(fileio_read_secret(path, 100, &s, &missing, &e), ==, 0);
    g_assert_cmpstr(s->data, ==, "hunter2");
    g_assert_cmpuint(s->len, ==, 7);
    g_assert_false(missing);
    /* A loose mode is repaired (with a warning on stderr). */
    g_assert_cmpint(chmod(path, 0644), ==, 0);
    g_clear_pointer(&s, secstr_free);
    g_assert_cmpint(fileio_read_secret(path, 100, &s, &missing, &e), ==, 0);
    g_assert_cmpint(testutil_mode(path), ==, 0600);
    /* Over the cap. */
    g_assert_cmpint(fileio_read_secret(path, 6, &none, &missing, &e), ==, -1);
    g_assert_null(none);
    /* Symbolic links and folders are refused. */
    g_assert_cmpint(symlink(path, link), ==, 0);
    g_assert_cmpint(fileio_read_secret(link, 100, &none, &missing, &e), ==, -1);
    g_assert_false(missing);
    g_assert_cmpint(e.status, ==, TOKEND_EX_CANTCREAT);
    g_assert_cmpint(g_mkdir(sub, 0700), ==, 0);
    g_assert_cmpint(fileio_read_secret(sub, 100, &none, &missing, &e), ==, -1);
    testutil_assert_contains(e.message, "not a regular file");
    g_assert_null(none);
}

static void test_check_private(void)
{
    g_autofree char *dir = testutil_mkdir("private");
    g_autofree char *path = g_build_filename(dir, "f", NULL);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    int fd;

    testutil_write(path, "x", 1, 0640);
    fd = open(path, O_RDONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(fileio_check_private(fd, path, false, &e), ==, -1);
    testutil_assert_contains(e.message, "640");
    g_assert_cmpint(testutil_mode(path), ==, 0640);
    g_assert_cmpint(fileio_check_private(fd, path, true, &e), ==, 0);
    g_assert_cmpint(testutil_mode(path), ==, 0600);
    g_assert_cmpint(fileio_check_private(fd, path, false, &e), ==, 0);
    close(fd);
}

static void test_remove(void)
{
    g_autofree char *dir = testutil_mkdir("remove");
    g_autofree char *path = g_build_filename(dir, "f", NULL);
    g_autofree char *names = NULL;
    g_auto(TokendError) e = TOKEND_ERROR_INIT;

    testutil_write(path, "x", 1, 0600);
    g_assert_cmpint(fileio_remove(path, &e), ==, 1);
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    g_assert_cmpint(fileio_remove(path, &e), ==, 0);
    g_assert_cmpint(e.status, ==, 0);
    names = testutil_list(dir);
    g_assert_cmpstr(names, ==, "");
    /* A folder is not a file to remove. */
    g_assert_cmpint(fileio_remove(dir, &e), ==, -1);
    g_assert_cmpint(e.status, ==, TOKEND_EX_CANTCREAT);
}

/* A reservation is a private temporary with the blocks allocated; the next
 * write of the path goes into it (same inode), shorter than reserved, and
 * nothing is left behind. */
static void test_reserve(void)
{
    g_autofree char *dir = testutil_mkdir("reserve");
    g_autofree char *path = g_build_filename(dir, "rt", NULL);
    g_autofree char *names = NULL, *back = NULL;
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    struct stat tmp_st, st;
    gsize len = 0;

    g_assert_cmpint(fileio_reserve(path, 16384, &e), ==, 0);
    names = testutil_list(dir);
    g_assert_true(g_str_has_prefix(names, "rt.tmp-") && g_str_has_suffix(names, "-reserved"));
    {
        g_autofree char *tmp = g_build_filename(dir, names, NULL);
        g_assert_cmpint(stat(tmp, &tmp_st), ==, 0);
        g_assert_cmpint(tmp_st.st_blocks * 512, >=, 16384);
        g_assert_cmpint(tmp_st.st_mode & 0777, ==, 0600);
    }
    g_assert_cmpint(fileio_write_atomic(path, "new\n", 4, FILEIO_SYNC_DURABLE, &e), ==, 0);
    g_assert_cmpint(stat(path, &st), ==, 0);
    g_assert_cmpuint(st.st_ino, ==, tmp_st.st_ino);
    back = testutil_read(path, &len);
    g_assert_cmpuint(len, ==, 4);
    g_assert_cmpstr(back, ==, "new\n");
    fileio_release(path);
    g_free(names);
    names = testutil_list(dir);
    g_assert_cmpstr(names, ==, "rt");
    /* Released unused: nothing left; a later write makes its own. */
    g_assert_cmpint(fileio_reserve(path, 100, &e), ==, 0);
    fileio_release(path);
    g_free(names);
    names = testutil_list(dir);
    g_assert_cmpstr(names, ==, "rt");
}

static void test_reserve_fails_in_a_missing_folder(void)
{
    g_autofree char *dir = testutil_mkdir("reserve-missing");
    g_autofree char *path = g_build_filename(dir, "gone", "rt", NULL);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autofree char *parent = g_path_get_dirname(path);

    g_assert_cmpint(fileio_reserve(path, 100, &e), ==, -1);
    g_assert_cmpint(e.status, ==, TOKEND_EX_CANTCREAT);
    testutil_assert_contains(e.message, parent);
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/fileio/write-atomic", test_write_atomic);
    g_test_add_func("/fileio/write-atomic/empty-and-binary", test_write_empty_and_binary);
    g_test_add_func("/fileio/write-atomic/fails-cleanly", test_write_fails_cleanly);
    g_test_add_func("/fileio/read/cap", test_read_cap);
    g_test_add_func("/fileio/read/missing", test_read_missing);
    g_test_add_func("/fileio/read-secret", test_read_secret);
    g_test_add_func("/fileio/check-private", test_check_private);
    g_test_add_func("/fileio/remove", test_remove);
    g_test_add_func("/fileio/reserve", test_reserve);
    g_test_add_func("/fileio/reserve/missing-folder", test_reserve_fails_in_a_missing_folder);
    return testutil_run();
}
