/* File-operation faults for the full-disk tests (fault-injection builds
 * only; see tokend/fault.h). */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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

void fault_open(const char *name)
{
    const char *fault = getenv("TOKEND_FAULT"), *log = getenv("TOKEND_FAULT_LOG");
    int fd;

    if (!fault || !log || strcmp(fault, name) != 0)
        return;
    /* open(2) itself, as glibc makes it: openat. */
    fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        dprintf(fd, "%s: opened\n", name);
        close(fd);
    }
}
#else
int fault_io(const char *op, const char *path)
{
    (void)op;
    (void)path;
    return 0;
}

void fault_open(const char *name)
{
    (void)name;
}
#endif
