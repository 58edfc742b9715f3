#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokend/fileio.h"
#include "tokend/log.h"

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static void fsync_dir(const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int fileio_write_atomic(const char *path, const void *data, size_t len, enum fileio_sync sync,
                        struct tokend_error *e)
{
    g_autofree char *tmp = NULL;
    int fd = -1;

    for (int attempt = 0; attempt < 16 && fd < 0; attempt++) {
        g_free(tmp);
        tmp = g_strdup_printf("%s.tmp-%d-%08x", path, (int)getpid(), g_random_int());
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot create %s: %s", path,
                         g_strerror(errno));
    if (fchmod(fd, 0600) < 0 || write_all(fd, data, len) < 0 ||
        (sync != FILEIO_SYNC_NONE && fdatasync(fd) < 0)) {
        int err = errno;
        close(fd);
        unlink(tmp);
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot write %s: %s", path, g_strerror(err));
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        int err = errno;
        unlink(tmp);
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot replace %s: %s", path,
                         g_strerror(err));
    }
    if (sync == FILEIO_SYNC_DURABLE)
        fsync_dir(path);
    return 0;
}

static bool is_temp_of(const char *name, const char *base)
{
    size_t n = strlen(base);

    return strncmp(name, base, n) == 0 && g_str_has_prefix(name + n, ".tmp-");
}

void fileio_remove_stale_temps_in(const char *dir, const char *const *names)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d)) != NULL) {
        for (const char *const *base = names; *base; base++) {
            if (is_temp_of(name, *base)) {
                g_autofree char *stale = g_build_filename(dir, name, NULL);
                (void)unlink(stale);
                break;
            }
        }
    }
}

void fileio_remove_stale_temps(const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *base = g_path_get_basename(path);
    const char *names[] = {base, NULL};

    fileio_remove_stale_temps_in(dir, names);
}

int fileio_check_private(int fd, const char *path, bool repair, struct tokend_error *e)
{
    struct stat st;

    if (fstat(fd, &st) < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot stat %s: %s", path,
                         g_strerror(errno));
    if (!S_ISREG(st.st_mode))
        return error_set(e, TOKEND_EX_CANTCREAT, "%s is not a regular file", path);
    if (st.st_uid != geteuid())
        return error_set(e, TOKEND_EX_CANTCREAT, "%s belongs to another user; refusing it",
                         path);
    if ((st.st_mode & 077) == 0)
        return 0;
    if (!repair)
        return error_set(e, TOKEND_EX_CANTCREAT, "%s is readable by others (mode %03o)", path,
                         (unsigned)(st.st_mode & 0777));
    log_warn("%s was readable by others (mode %03o); setting 0600", path,
             (unsigned)(st.st_mode & 0777));
    if (fchmod(fd, 0600) < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot make %s private: %s", path,
                         g_strerror(errno));
    return 0;
}

static int open_for_read(const char *path, bool *missing, struct tokend_error *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);

    if (missing)
        *missing = fd < 0 && errno == ENOENT;
    if (fd < 0)
        error_set(e, TOKEND_EX_CANTCREAT, "cannot read %s: %s", path, g_strerror(errno));
    return fd;
}

/* Reads into buf (cap+1 bytes); returns bytes read or -1. */
static ssize_t read_capped(int fd, char *buf, size_t cap)
{
    size_t got = 0;

    while (got <= cap) {
        ssize_t n = read(fd, buf + got, cap + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

int fileio_read(const char *path, size_t cap, char **out, size_t *out_len, bool *missing,
                struct tokend_error *e)
{
    g_autofree char *buf = NULL;
    ssize_t n;
    int fd = open_for_read(path, missing, e);

    if (fd < 0)
        return -1;
    buf = g_malloc(cap + 2);
    n = read_capped(fd, buf, cap);
    close(fd);
    if (n < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot read %s: %s", path, g_strerror(errno));
    if ((size_t)n > cap)
        return error_set(e, TOKEND_EX_CANTCREAT, "%s is larger than %zu bytes", path, cap);
    buf[n] = '\0';
    if (out_len)
        *out_len = (size_t)n;
    *out = g_steal_pointer(&buf);
    return 0;
}

int fileio_read_secret(const char *path, size_t cap, SecStr **out, bool *missing,
                       struct tokend_error *e)
{
    g_autoptr(SecStr) s = NULL;
    ssize_t n;
    int fd = open_for_read(path, missing, e);

    if (fd < 0)
        return -1;
    if (fileio_check_private(fd, path, true, e) < 0) {
        close(fd);
        return -1;
    }
    s = secstr_new(cap + 1);
    n = read_capped(fd, s->data, cap);
    close(fd);
    if (n < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot read %s: %s", path, g_strerror(errno));
    if ((size_t)n > cap)
        return error_set(e, TOKEND_EX_CANTCREAT, "%s is larger than %zu bytes", path, cap);
    s->len = (size_t)n;
    s->data[n] = '\0';
    *out = g_steal_pointer(&s);
    return 0;
}

int fileio_remove(const char *path, struct tokend_error *e)
{
    if (unlink(path) == 0) {
        fsync_dir(path);
        return 1;
    }
    if (errno == ENOENT)
        return 0;
    return error_set(e, TOKEND_EX_CANTCREAT, "cannot remove %s: %s", path, g_strerror(errno));
}
