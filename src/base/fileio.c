#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokend/fileio.h"
#include "tokend/fault.h"
#include "tokend/log.h"

/* Fails like the operation would when a fault-injection build is told to. */
static int io_fault(const char *op, const char *path)
{
    int err = FAULT_IO(op, path);

    if (err == 0)
        return 0;
    errno = err;
    return -1;
}

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
        if (io_fault("dirsync", dir) == 0)
            (void)fsync(fd);
        close(fd);
    }
}

/* The temporary file that fileio_reserve made for path in this process. */
static char *reserved_name(const char *path)
{
    return g_strdup_printf("%s.tmp-%d-reserved", path, (int)getpid());
}

static int open_reserved(const char *path, char **tmp)
{
    struct tokend_error ignored = TOKEND_ERROR_INIT;
    int fd;

    *tmp = reserved_name(path);
    fd = open(*tmp, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd >= 0 && fileio_check_private(fd, *tmp, false, &ignored) < 0) {
        close(fd);
        fd = -1;
    }
    error_clear(&ignored);
    if (fd < 0)
        g_clear_pointer(tmp, g_free);
    return fd;
}

static int open_temp(const char *path, char **tmp)
{
    int fd = open_reserved(path, tmp);

    for (int attempt = 0; attempt < 16 && fd < 0; attempt++) {
        g_free(*tmp);
        *tmp = g_strdup_printf("%s.tmp-%d-%08x", path, (int)getpid(), g_random_int());
        fd = io_fault("create", *tmp) < 0
                 ? -1
                 : open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    return fd;
}

/* Over whatever the file held (zeros, when it was reserved), then cut.
 * The group and mode are set before the first byte. */
static int fill(int fd, const char *tmp, const void *data, size_t len, enum fileio_sync sync,
                gid_t gid, mode_t mode)
{
    if ((gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) < 0) || fchmod(fd, mode) < 0 ||
        io_fault("write", tmp) < 0 || write_all(fd, data, len) < 0 || ftruncate(fd, (off_t)len) < 0)
        return -1;
    if (sync != FILEIO_SYNC_NONE && (io_fault("sync", tmp) < 0 || fdatasync(fd) < 0))
        return -1;
    return 0;
}

int fileio_write_atomic(const char *path, const void *data, size_t len, enum fileio_sync sync,
                        struct tokend_error *e)
{
    return fileio_write_atomic_shared(path, data, len, sync, (gid_t)-1, 0600, e);
}

int fileio_write_atomic_shared(const char *path, const void *data, size_t len,
                               enum fileio_sync sync, gid_t gid, mode_t mode,
                               struct tokend_error *e)
{
    g_autofree char *tmp = NULL;
    int fd = open_temp(path, &tmp);

    if (fd < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot create %s: %s", path, g_strerror(errno));
    if (fill(fd, tmp, data, len, sync, gid, mode) < 0) {
        int err = errno;
        close(fd);
        unlink(tmp);
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot write %s: %s", path, g_strerror(err));
    }
    if (close(fd) < 0 || io_fault("rename", tmp) < 0 || rename(tmp, path) < 0) {
        int err = errno;
        unlink(tmp);
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot replace %s: %s", path, g_strerror(err));
    }
    if (sync == FILEIO_SYNC_DURABLE)
        fsync_dir(path);
    return 0;
}

/* Allocate the blocks; where the file system cannot, write them and sync
 * (so that they are allocated, not only promised).  Allocated blocks need
 * no sync: a reservation that a crash loses is not needed any more. */
static int allocate(int fd, const char *tmp, size_t bytes)
{
    static const char zeros[4096];
    /* Test builds: as on a file system without fallocate. */
    bool unsupported = FAULT_NUMBER("TOKEND_FAULT_NO_FALLOCATE", 0) != 0;

    if (io_fault("reserve", tmp) < 0)
        return -1;
    if (!unsupported && fallocate(fd, 0, 0, (off_t)bytes) == 0)
        return 0;
    if (!unsupported && errno != EOPNOTSUPP && errno != ENOSYS)
        return -1;
    for (size_t done = 0; done < bytes; done += sizeof(zeros))
        if (write_all(fd, zeros, MIN(sizeof(zeros), bytes - done)) < 0)
            return -1;
    return io_fault("sync", tmp) < 0 ? -1 : fsync(fd);
}

int fileio_reserve(const char *path, size_t bytes, struct tokend_error *e)
{
    g_autofree char *tmp = reserved_name(path);
    g_autofree char *dir = g_path_get_dirname(path);
    int fd, err;

    if (io_fault("create", tmp) < 0 ||
        (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot write in %s: %s", dir, g_strerror(errno));
    if (fchmod(fd, 0600) == 0 && allocate(fd, tmp, bytes) == 0) {
        close(fd);
        return 0;
    }
    err = errno;
    close(fd);
    unlink(tmp);
    return error_set(e, TOKEND_EX_CANTCREAT, "no room for %zu bytes in %s: %s", bytes, dir,
                     g_strerror(err));
}

void fileio_release(const char *path)
{
    g_autofree char *tmp = reserved_name(path);

    (void)unlink(tmp);
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

/* Regular, owned by owner, no mode bits beyond 0600 and shared (0040 when
 * a group may read it); loose modes of ours repaired when asked. */
static int check_file(int fd, const char *path, uid_t owner, mode_t shared, bool repair,
                      struct tokend_error *e)
{
    struct stat st;
    mode_t want = 0600 | shared;

    if (fstat(fd, &st) < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot stat %s: %s", path, g_strerror(errno));
    if (!S_ISREG(st.st_mode))
        return error_set(e, TOKEND_EX_CANTCREAT, "%s is not a regular file", path);
    if (st.st_uid != owner)
        return error_set(e, TOKEND_EX_CANTCREAT, "%s belongs to another user; refusing it", path);
    if ((st.st_mode & 077 & ~shared) == 0)
        return 0;
    if (!repair || owner != geteuid())
        return error_set(e, TOKEND_EX_CANTCREAT, "%s is readable by others (mode %03o)", path,
                         (unsigned)(st.st_mode & 0777));
    log_warn("%s was readable by others (mode %03o); setting %04o", path,
             (unsigned)(st.st_mode & 0777), (unsigned)want);
    if (fchmod(fd, want) < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot make %s private: %s", path,
                         g_strerror(errno));
    return 0;
}

int fileio_check_private(int fd, const char *path, bool repair, struct tokend_error *e)
{
    return check_file(fd, path, geteuid(), 0, repair, e);
}

static const char *file_kind(mode_t mode)
{
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISDIR(mode))
        return "a folder";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "a device";
    return "a special file";
}

/* Opened without waiting (a FIFO would block the open, and every read
 * after it, until someone writes), then refused unless a regular file. */
static int open_for_read(const char *path, bool *missing, struct tokend_error *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
    struct stat st;

    if (missing)
        *missing = fd < 0 && errno == ENOENT;
    if (fd < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot read %s: %s", path, g_strerror(errno));
    if (fstat(fd, &st) < 0) {
        int err = errno;
        close(fd);
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot stat %s: %s", path, g_strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return error_set(e, TOKEND_EX_CANTCREAT,
                         "%s is %s, not a regular file; refusing to read it", path,
                         file_kind(st.st_mode));
    }
    (void)fcntl(fd, F_SETFL, O_RDONLY);
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
    return fileio_read_secret_shared(path, cap, geteuid(), 0, out, missing, e);
}

int fileio_read_secret_shared(const char *path, size_t cap, uid_t owner, mode_t shared,
                              SecStr **out, bool *missing, struct tokend_error *e)
{
    g_autoptr(SecStr) s = NULL;
    ssize_t n;
    int fd = open_for_read(path, missing, e);

    if (fd < 0)
        return -1;
    if (check_file(fd, path, owner, shared, true, e) < 0) {
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
