#pragma once
/* Shared by the unit tests: a private HOME for each test program, so that
 * no test can reach the user's files or keyring, and small file helpers. */

#include <stdbool.h>
#include <sys/types.h>
#include <glib.h>

#include "tokend/error.h"

typedef struct tokend_error TokendError;
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(TokendError, error_clear)

/* g_test_init, then point HOME, XDG_STATE_HOME and XDG_CONFIG_HOME at a new
 * g_dir_make_tmp() folder.  Call first thing in main(). */
void testutil_init(int *argc, char ***argv);
/* g_test_run, then remove the folder.  Returns g_test_run's result. */
int testutil_run(void);
/* The private HOME. */
const char *testutil_home(void);
/* A new, empty folder inside HOME, unique to the caller. */
char *testutil_mkdir(const char *name);

void testutil_write(const char *path, const char *data, gssize len, mode_t mode);
char *testutil_read(const char *path, gsize *len);
mode_t testutil_mode(const char *path);
/* The names in a folder, sorted, joined with " ". */
char *testutil_list(const char *dir);
/* Assert that haystack contains needle, printing both if not. */
#define testutil_assert_contains(haystack, needle)                                                 \
    do {                                                                                           \
        const char *h_ = (haystack), *n_ = (needle);                                               \
        if (!h_ || !strstr(h_, n_))                                                                \
            g_error("%s:%d: \"%s\" does not contain \"%s\"", __FILE__, __LINE__,                   \
                    h_ ? h_ : "(null)", n_);                                                       \
    } while (0)
