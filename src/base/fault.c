/* File-operation faults for the full-disk tests (fault-injection builds
 * only; see tokend/fault.h). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "tokend/fault.h"

#ifdef TOKEND_FAULT_INJECTION
static gint fault_io_count; /* test builds only: the operations so far */

static void fault_io_note(int n, const char *op, const char *path)
{
    const char *log = getenv("TOKEND_FAULT_LOG");
    FILE *f = log ? fopen(log, "ae") : NULL;

    if (f) {
        fprintf(f, "%d %s %s\n", n, op, path);
        fclose(f);
    }
}

int fault_io(const char *op, const char *path)
{
    const char *at = getenv("TOKEND_FAULT_IO_AT");
    const char *name = getenv("TOKEND_FAULT_IO_ERRNO");
    int n;

    if (!at)
        return 0;
    n = g_atomic_int_add(&fault_io_count, 1) + 1;
    if (n != atoi(at))
        return 0;
    fault_io_note(n, op, path);
    return name && strcmp(name, "EIO") == 0 ? EIO : ENOSPC;
}
#else
int fault_io(const char *op, const char *path)
{
    (void)op;
    (void)path;
    return 0;
}
#endif
