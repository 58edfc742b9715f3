/* The relaying process's sandbox: no new privileges, Landlock without any
 * file access, a seccomp filter of the relay loop's system calls (see
 * tokend/sandbox.h).  The list below was found by running the tunnel
 * under strace against Dovecot (IMAP and POP3, implicit TLS and
 * STARTTLS, IDLE, big fetches, fetchmail) with Debian 12's glibc and
 * OpenSSL; a call missing here shows as SIGSYS, see tokend(1). */

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tokend/log.h"
#include "tokend/sandbox.h"
#include "tokend/seccomplib.h"

/* Rights of later Landlock ABIs than the headers of Debian 12 know. */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif

#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_ASAN 1
#endif
#endif

/* Allowed whatever their arguments.  mmap, mprotect, fcntl, newfstatat
 * and tgkill are allowed below only with harmless arguments. */
static const char *const relay_syscalls[] = {
    /* the relay: client pipes or sockets, the server's socket */
    "read", "write", "readv", "writev", "recvfrom", "recvmsg", "sendto", "sendmsg", "poll", "ppoll",
    "shutdown", "close",
    /* clocks (the vDSO's fallbacks), waiting on locks, signals' returns */
    "clock_gettime", "clock_getres", "gettimeofday", "time", "futex", "rt_sigreturn",
    "restart_syscall",
    /* glibc's malloc and OpenSSL's buffers; OpenSSL's random numbers */
    "brk", "munmap", "mremap", "madvise", "getrandom", "getpid", "gettid",
    /* the end: exit, or abort()'s SIGABRT (raise blocks signals first) */
    "rt_sigprocmask", "exit", "exit_group", NULL};

const char *const *sandbox_syscalls(void)
{
    return relay_syscalls;
}

/* Landlock --------------------------------------------------------------- */

static int landlock_abi(void)
{
#ifdef SYS_landlock_create_ruleset
    long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return v < 0 ? 0 : (int)v;
#else
    return 0;
#endif
}

/* Every file right the kernel's ABI knows: handled, and none granted. */
static uint64_t landlock_fs_rights(int abi)
{
    uint64_t rights = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1: bits 0-12 */

    if (abi >= 2)
        rights |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        rights |= LANDLOCK_ACCESS_FS_TRUNCATE;
    if (abi >= 5)
        rights |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    return rights;
}

static int landlock_enter(const char *who, struct tokend_error *e)
{
    int abi = landlock_abi();
    struct landlock_ruleset_attr attr = {.handled_access_fs = landlock_fs_rights(abi)};
    int fd;

    if (abi == 0) {
        log_verbose("%s: Landlock is not available in this kernel (%s); files are kept out "
                    "by the system call filter alone",
                    who, g_strerror(errno));
        return 0;
    }
    fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
    if (fd < 0)
        return error_set(e, TOKEND_EX_SOFTWARE, "cannot create a Landlock ruleset: %s",
                         g_strerror(errno));
    if (syscall(SYS_landlock_restrict_self, fd, 0) < 0) {
        int err = errno;
        close(fd);
        return error_set(e, TOKEND_EX_SOFTWARE, "cannot enter the Landlock ruleset: %s",
                         g_strerror(err));
    }
    close(fd);
    log_verbose("%s: Landlock ABI %d: no file access", who, abi);
    return 0;
}

/* seccomp ---------------------------------------------------------------- */

/* libseccomp, loaded by sandbox_enter before Landlock (seccomplib.h). */
static const struct seccomplib *sc;

static void seccomp_ctx_free(scmp_filter_ctx ctx)
{
    if (ctx)
        sc->release(ctx);
}

/* name: allowed (or answered with action); nothing when this
 * architecture has no such call. */
static int act_on_name(scmp_filter_ctx ctx, uint32_t action, const char *name,
                       struct tokend_error *e)
{
    int nr = sc->syscall_resolve_name(name), rc;

    if (nr == __NR_SCMP_ERROR)
        return 0;
    if ((rc = sc->rule_add(ctx, action, nr, 0)) < 0)
        return error_set(e, TOKEND_EX_SOFTWARE, "seccomp: cannot allow %s: %s", name,
                         g_strerror(-rc));
    return 0;
}

/* Calls allowed only with some arguments: memory never made executable,
 * fcntl only for the descriptor's flags, fstat of a descriptor (glibc's
 * fstat is newfstatat(fd, "", AT_EMPTY_PATH)), signals only to itself. */
static int allow_narrow(scmp_filter_ctx ctx, struct tokend_error *e)
{
    int rc = 0;

    rc |= sc->rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                       SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    rc |= sc->rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                       SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    rc |= sc->rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1, SCMP_A1(SCMP_CMP_EQ, F_GETFL));
    rc |= sc->rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1, SCMP_A1(SCMP_CMP_EQ, F_SETFL));
    rc |= sc->rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1, SCMP_A1(SCMP_CMP_EQ, F_GETFD));
    rc |= sc->rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(newfstatat), 1,
                       SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH));
    rc |= sc->rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fstat), 0);
    rc |= sc->rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                       SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
    if (rc < 0)
        return error_set(e, TOKEND_EX_SOFTWARE, "seccomp: cannot add the argument rules");
    return 0;
}

static int act_on_list(scmp_filter_ctx ctx, uint32_t action, const char *const *names,
                       struct tokend_error *e)
{
    for (size_t i = 0; names && names[i]; i++)
        if (act_on_name(ctx, action, names[i], e) < 0)
            return -1;
    return 0;
}

static int seccomp_enter(const struct sandbox_policy *p, struct tokend_error *e)
{
    scmp_filter_ctx ctx = sc->init(SCMP_ACT_KILL_PROCESS);
    int rc = -1, err;

    if (!ctx)
        return error_set(e, TOKEND_EX_SOFTWARE, "seccomp: cannot start a filter");
    /* Every thread, not only this one. */
    if ((err = sc->attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0)
        error_set(e, TOKEND_EX_SOFTWARE, "seccomp: no thread sync: %s", g_strerror(-err));
    else if (act_on_list(ctx, SCMP_ACT_ALLOW, relay_syscalls, e) == 0 &&
             act_on_list(ctx, SCMP_ACT_ALLOW, p->extra_syscalls, e) == 0 &&
             act_on_list(ctx, SCMP_ACT_ERRNO(EACCES), p->refused_syscalls, e) == 0 &&
             allow_narrow(ctx, e) == 0) {
        if ((err = sc->load(ctx)) < 0)
            error_set(e, TOKEND_EX_SOFTWARE, "cannot load the seccomp filter: %s",
                      g_strerror(-err));
        else
            rc = 0;
    }
    seccomp_ctx_free(ctx);
    return rc;
}

/* ------------------------------------------------------------------------ */

static bool sandbox_skipped(const char *who)
{
    const char *env = getenv("TOKEND_SANDBOX");

    if (env && strcmp(env, "off") == 0) {
        log_warn("%s: TOKEND_SANDBOX=off: relaying without the sandbox", who);
        return true;
    }
#ifdef SANDBOX_ASAN
    log_verbose("%s: no sandbox in this AddressSanitizer build (LeakSanitizer needs /proc and "
                "ptrace at exit)",
                who);
    return true;
#else
    return false;
#endif
}

int sandbox_enter(const struct sandbox_policy *p, struct tokend_error *e)
{
    const char *who = p->who ? p->who : "relay";

    if (sandbox_skipped(who))
        return 0;
    /* Before Landlock, which leaves no file to load it from. */
    if (!(sc = seccomplib_load(e))) {
        error_prefix(e, "%s: sandbox", who);
        return -1;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return error_set(e, TOKEND_EX_SOFTWARE, "cannot set no new privileges: %s",
                         g_strerror(errno));
    if (landlock_enter(who, e) < 0 || seccomp_enter(p, e) < 0) {
        error_prefix(e, "%s: sandbox", who);
        return -1;
    }
    log_verbose("%s: sandboxed: no new privileges, system calls filtered (SIGSYS on others)", who);
    return 0;
}
