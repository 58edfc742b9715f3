/* tokenfile: the access token file mail clients read. */

#include <grp.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokend/tokenfile.h"
#include "tokend/tokenrule.h"
#include "testutil.h"

static const struct {
    const char *token;
    size_t len;
    bool valid;
} token_cases[] = {
    {"EwBwA8l6BAAU", 12, true},
    {"ya29.a0AfH6SM-_~+/=", 19, true},
    {"!", 1, true},
    {"~", 1, true},
    {"", 0, false},
    {"a b", 3, false},
    {"a\r", 2, false},
    {"a\nb", 3, false},
    {"a\tb", 3, false},
    {"a\0b", 3, false},
    {"\x7f", 1, false},
    {"t\xc3\xb6k", 4, false},
    {" tok", 4, false},
    {"tok\n", 4, false},
};

static void test_token_valid(void)
{
    g_autofree char *long_ok = g_strnfill(9000, 'a');
    g_autofree char *too_long = g_strnfill(9001, 'a');

    for (size_t i = 0; i < G_N_ELEMENTS(token_cases); i++) {
        g_test_message("case %zu", i);
        g_assert_cmpint(tokenrule_valid(token_cases[i].token, token_cases[i].len), ==,
                        token_cases[i].valid);
    }
    g_assert_true(tokenrule_valid(long_ok, strlen(long_ok)));
    g_assert_false(tokenrule_valid(too_long, strlen(too_long)));
}

static void test_round_trip(void)
{
    g_autofree char *dir = testutil_mkdir("round-trip");
    g_autofree char *path = g_build_filename(dir, "token", NULL);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;

    for (size_t i = 0; i < G_N_ELEMENTS(token_cases); i++) {
        g_autoptr(SecStr) tok = NULL;
        g_autoptr(SecStr) back = NULL;
        g_autofree char *raw = NULL;
        gsize len = 0;
        bool missing = true;

        if (!token_cases[i].valid)
            continue;
        tok = secstr_from(token_cases[i].token, token_cases[i].len);
        g_assert_cmpint(tokenfile_write(path, tok, &e), ==, 0);
        raw = testutil_read(path, &len);
        /* The token and exactly one "\n". */
        g_assert_cmpuint(len, ==, tok->len + 1);
        g_assert_cmpmem(raw, len - 1, tok->data, tok->len);
        g_assert_cmpint(raw[len - 1], ==, '\n');
        g_assert_cmpint(testutil_mode(path), ==, 0600);
        back = tokenfile_read(path, &missing, &e);
        g_assert_nonnull(back);
        g_assert_false(missing);
        g_assert_true(secstr_equal(back, tok));
    }
}

static void test_write_refuses(void)
{
    g_autofree char *dir = testutil_mkdir("refuse");
    g_autofree char *path = g_build_filename(dir, "token", NULL);
    g_autofree char *names = NULL;
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(SecStr) good = secstr_from("good-token", 10);

    g_assert_cmpint(tokenfile_write(path, good, &e), ==, 0);
    for (size_t i = 0; i < G_N_ELEMENTS(token_cases); i++) {
        g_autoptr(SecStr) bad = NULL;
        g_autofree char *raw = NULL;

        if (token_cases[i].valid)
            continue;
        g_test_message("case %zu", i);
        bad = secstr_from(token_cases[i].token, token_cases[i].len);
        error_clear(&e);
        g_assert_cmpint(tokenfile_write(path, bad, &e), ==, -1);
        g_assert_cmpint(e.status, ==, TOKEND_EX_DATAERR);
        /* The earlier token stays. */
        raw = testutil_read(path, NULL);
        g_assert_cmpstr(raw, ==, "good-token\n");
    }
    g_assert_cmpint(tokenfile_write(path, NULL, &e), ==, -1);
    g_assert_cmpint(e.status, ==, TOKEND_EX_DATAERR);
    names = testutil_list(dir);
    g_assert_cmpstr(names, ==, "token");
}

static const struct {
    const char *content;
    gssize len;
    bool ok;
} read_cases[] = {
    {"tok\n", -1, true},
    {"tok", -1, true},
    {"", -1, false},
    {"\n", -1, false},
    {"tok\n\n", -1, false},
    {"tok\r\n", -1, false},
    {"line1\nline2\n", -1, false},
    {"tok en\n", -1, false},
    {"tok\0\n", 5, false},
};

static void test_read(void)
{
    g_autofree char *dir = testutil_mkdir("read");
    g_autofree char *path = g_build_filename(dir, "token", NULL);

    for (size_t i = 0; i < G_N_ELEMENTS(read_cases); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(SecStr) got = NULL;
        bool missing = true;

        g_test_message("case %zu", i);
        testutil_write(path, read_cases[i].content, read_cases[i].len, 0600);
        got = tokenfile_read(path, &missing, &e);
        g_assert_false(missing);
        if (read_cases[i].ok) {
            g_assert_nonnull(got);
            g_assert_cmpstr(got->data, ==, "tok");
            g_assert_cmpuint(got->len, ==, 3);
        } else {
            g_assert_null(got);
            g_assert_cmpint(e.status, !=, 0);
            testutil_assert_contains(e.message, path);
        }
    }
}

static void test_read_loose_mode(void)
{
    g_autofree char *dir = testutil_mkdir("loose");
    g_autofree char *path = g_build_filename(dir, "token", NULL);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(SecStr) got = NULL;

    testutil_write(path, "tok\n", -1, 0644);
    got = tokenfile_read(path, NULL, &e);
    /* Repaired with a warning, then read. */
    g_assert_nonnull(got);
    g_assert_cmpstr(got->data, ==, "tok");
    g_assert_cmpint(testutil_mode(path), ==, 0600);
}

static void test_read_missing_and_special(void)
{
    g_autofree char *dir = testutil_mkdir("special");
    g_autofree char *path = g_build_filename(dir, "token", NULL);
    g_autofree char *target = g_build_filename(dir, "target", NULL);
    g_autofree char *big = g_strnfill(9001, 'a');
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    bool missing = false;

    g_assert_null(tokenfile_read(path, &missing, &e));
    g_assert_true(missing);
    /* A symbolic link, even to a good token, is not ours to read. */
    testutil_write(target, "tok\n", -1, 0600);
    g_assert_cmpint(symlink(target, path), ==, 0);
    g_assert_null(tokenfile_read(path, &missing, &e));
    g_assert_false(missing);
    g_assert_cmpint(unlink(path), ==, 0);
    /* Larger than any token. */
    testutil_write(path, big, -1, 0600);
    g_assert_null(tokenfile_read(path, &missing, &e));
    g_assert_cmpint(e.status, ==, TOKEND_EX_CANTCREAT);
}

/* The last group of the group database: its lookup parses the most. */
static void last_group(char **name, gid_t *gid)
{
    struct group *gr;

    setgrent();
    while ((gr = getgrent())) {
        g_free(*name);
        *name = g_strdup(gr->gr_name);
        *gid = gr->gr_gid;
    }
    endgrent();
}

struct lookup_job {
    const char *group;
    gid_t want;
    int wrong;
};

static gpointer lookup_many(gpointer data)
{
    struct lookup_job *job = data;

    for (int i = 0; i < 400; i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        gid_t gid = (gid_t)-1;

        tokenfile_reader_gid(job->group, &gid, &e);
        if (gid != job->want || (e.message && !strstr(e.message, job->group)))
            job->wrong++;
    }
    return NULL;
}

/* A refresh saves token files from several writer threads at once: the
 * reader group's lookup must not share a buffer between them. */
static void test_reader_gid_from_threads(void)
{
    g_autofree char *group = NULL;
    gid_t want = 0;
    struct lookup_job jobs[8];
    GThread *threads[G_N_ELEMENTS(jobs)];

    last_group(&group, &want);
    g_assert_nonnull(group);
    for (size_t i = 0; i < G_N_ELEMENTS(jobs); i++) {
        jobs[i] = (struct lookup_job){group, want, 0};
        threads[i] = g_thread_new("lookup", lookup_many, &jobs[i]);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(jobs); i++) {
        g_thread_join(threads[i]);
        g_assert_cmpint(jobs[i].wrong, ==, 0);
    }
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/tokenfile/token-valid", test_token_valid);
    g_test_add_func("/tokenfile/round-trip", test_round_trip);
    g_test_add_func("/tokenfile/write-refuses", test_write_refuses);
    g_test_add_func("/tokenfile/read", test_read);
    g_test_add_func("/tokenfile/read/loose-mode", test_read_loose_mode);
    g_test_add_func("/tokenfile/read/missing-and-special", test_read_missing_and_special);
    g_test_add_func("/tokenfile/reader-gid/threads", test_reader_gid_from_threads);
    return testutil_run();
}
