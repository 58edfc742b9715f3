/* A stand-in for libFuzzer where there is none (gcc builds): runs the
 * target once on every file named, or in the folders named, and exits.
 * Lets any build replay the seed corpora as regression tests, under ASan
 * or valgrind too. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "fuzz.h"

static int run_file(const char *path, unsigned *count)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *data = NULL;
    gsize len = 0;
    uint8_t *copy;

    if (!g_file_get_contents(path, &data, &len, &err)) {
        fprintf(stderr, "replay: %s\n", err->message);
        return -1;
    }
    /* An exact-size buffer, as libFuzzer gives, so that overreads show. */
    copy = g_memdup2(data, len);
    LLVMFuzzerTestOneInput(copy, len);
    g_free(copy);
    (*count)++;
    return 0;
}

static int compare_paths(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *path, unsigned *count)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GDir) dir = g_dir_open(path, 0, &err);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const char *name;

    if (!dir) {
        fprintf(stderr, "replay: %s\n", err->message);
        return -1;
    }
    while ((name = g_dir_read_name(dir)))
        g_ptr_array_add(names, g_build_filename(path, name, NULL));
    g_ptr_array_sort(names, compare_paths);
    for (guint i = 0; i < names->len; i++)
        if (run_file(g_ptr_array_index(names, i), count) < 0)
            return -1;
    return 0;
}

int main(int argc, char **argv)
{
    unsigned count = 0;

    LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-')
            continue; /* libFuzzer flags: nothing to do here */
        if ((g_file_test(argv[i], G_FILE_TEST_IS_DIR) ? run_dir(argv[i], &count)
                                                      : run_file(argv[i], &count)) < 0)
            return 1;
    }
    printf("replay: %u inputs, no crash\n", count);
    return 0;
}
