/* Getting the other tool's files into memory: plain reads, `gpg --decrypt`
 * run as a child through spawn.h (no shell; the plaintext only on its
 * stdout pipe; gpg asks its agent for the key as it does for the tool),
 * and the password email-oauth2-proxy's tokens are encrypted under. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "tokend/import.h"
#include "tokend/spawn.h"

#define FILE_MAX (1024 * 1024)
#define PASSWORD_MAX 4096
/* gpg may wait for the user at a pinentry. */
#define GPG_TIMEOUT_S 300

static int read_fd(int fd, SecStr *s, size_t cap)
{
    char buf[4096];
    int r = 0;

    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));

        if (n == 0)
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        if (s->len + (size_t)n > cap) {
            r = -EFBIG;
            break;
        }
        secstr_append(s, buf, (size_t)n);
    }
    explicit_bzero(buf, sizeof(buf));
    return r;
}

static int not_a_file(const char *path, struct tokend_error *e)
{
    return error_set(e, TOKEND_EX_USAGE,
                     "%s is not a regular file (a FIFO, device or folder); refusing to read it",
                     path);
}

/* Opened without waiting: a FIFO would block the open until someone
 * writes to it.  Only a regular file is read. */
static SecStr *read_file(const char *path, struct tokend_error *e)
{
    g_autoptr(SecStr) s = secstr_new(4096);
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), r;

    if (fd < 0) {
        error_set(e, errno == ENOENT ? TOKEND_EX_USAGE : TOKEND_EX_CANTCREAT, "cannot read %s: %s",
                  path, g_strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        not_a_file(path, e);
        return NULL;
    }
    (void)fcntl(fd, F_SETFL, O_RDONLY);
    r = read_fd(fd, s, FILE_MAX);
    close(fd);
    if (r < 0) {
        error_set(e, TOKEND_EX_DATAERR, "cannot read %s: %s", path,
                  r == -EFBIG ? "too large" : g_strerror(-r));
        return NULL;
    }
    return g_steal_pointer(&s);
}

/* gpg's stdin is /dev/null: a pinentry on the terminal learns which one
 * from GPG_TTY, which gpg would otherwise take from its stdin. */
static char **gpg_env(void)
{
    char **env = g_get_environ();
    char tty[256] = "";

    if (!g_environ_getenv(env, "GPG_TTY") && ttyname_r(STDIN_FILENO, tty, sizeof(tty)) == 0)
        env = g_environ_setenv(env, "GPG_TTY", tty, TRUE);
    return env;
}

/* gpg --decrypt FILE; its messages go to our stderr, as when the other tool
 * runs it.  It stays in tokend's process group: with a loopback pinentry
 * it asks on the terminal itself. */
static SecStr *gpg_decrypt(const char *path, struct tokend_error *e)
{
    const char *argv[] = {"gpg", "--quiet", "--decrypt", "--", path, NULL};
    g_auto(GStrv) env = gpg_env();
    SpawnOptions o = {.what = "gpg",
                      .argv = argv,
                      .env = (const char *const *)env,
                      .out = SPAWN_IO_PIPE,
                      .err = SPAWN_IO_LOG,
                      .out_max = FILE_MAX,
                      .timeout_ms = GPG_TIMEOUT_S * 1000,
                      .keep_group = true};
    SpawnResult r = SPAWN_RESULT_INIT;
    SecStr *plain = NULL;
    struct stat st;

    if (access(path, R_OK) < 0 || stat(path, &st) < 0) {
        error_set(e, TOKEND_EX_USAGE, "cannot read %s: %s", path, g_strerror(errno));
        return NULL;
    }
    /* gpg would wait on a FIFO as long as no one writes to it. */
    if (!S_ISREG(st.st_mode)) {
        not_a_file(path, e);
        return NULL;
    }
    if (spawn_run(&o, &r, e) < 0)
        return NULL;
    if (spawn_succeeded(&r))
        plain = g_steal_pointer(&r.out);
    else if (r.end == SPAWN_END_EXITED)
        error_set(e, TOKEND_EX_DATAERR, "gpg could not decrypt %s (see its message above)", path);
    else
        spawn_error(e, TOKEND_EX_DATAERR, &r, NULL);
    spawn_result_clear(&r);
    return plain;
}

static int read_password_line(SecStr *s)
{
    char c;
    ssize_t n;

    while ((n = read(STDIN_FILENO, &c, 1)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (c == '\n')
            break;
        if (s->len >= PASSWORD_MAX)
            return -1;
        secstr_append(s, &c, 1);
    }
    c = 0;
    if (s->len && s->data[s->len - 1] == '\r')
        s->data[--s->len] = '\0';
    return 0;
}

SecStr *import_ask_password(const char *prompt, struct tokend_error *e)
{
    g_autoptr(SecStr) s = secstr_new(128);
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    int r;

    if (tty) {
        /* Echo off before the prompt: nothing typed after it is shown. */
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ECHONL;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        fprintf(stderr, "%s", prompt);
    }
    r = read_password_line(s);
    if (tty)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    if (r < 0) {
        error_set(e, TOKEND_EX_USAGE, "cannot read the password from standard input");
        return NULL;
    }
    return g_steal_pointer(&s);
}

static int read_fetchmail(const char *file, ImportFound *f, struct tokend_error *e)
{
    g_autoptr(SecStr) config = read_file(file, e);
    g_autoptr(SecStr) text = NULL;
    g_autofree char *rt_file = NULL;

    if (!config ||
        import_parse_fetchmail_config(config->data, config->len, &rt_file, &f->client_id, e) < 0)
        return -1;
    if (!(text = read_file(rt_file, e))) {
        error_prefix(e, "refresh_token_file");
        return -1;
    }
    f->refresh_token = import_parse_token_line(text, e);
    return f->refresh_token ? 0 : -1;
}

/* "-": the JSON already decrypted, on standard input (a mutt_oauth2.py
 * DECRYPTION_PIPE other than gpg; oama's keyring via secret-tool lookup). */
static SecStr *read_stdin(struct tokend_error *e)
{
    g_autoptr(SecStr) s = secstr_new(4096);
    int r = read_fd(STDIN_FILENO, s, FILE_MAX);

    if (r < 0) {
        error_set(e, TOKEND_EX_DATAERR, "cannot read standard input: %s",
                  r == -EFBIG ? "too large" : g_strerror(-r));
        return NULL;
    }
    return g_steal_pointer(&s);
}

static int read_gpg_json(const char *file, ImportFound *f, struct tokend_error *e)
{
    g_autoptr(SecStr) json = strcmp(file, "-") == 0 ? read_stdin(e) : gpg_decrypt(file, e);

    if (!json)
        return -1;
    f->refresh_token = import_parse_json(json, e);
    return f->refresh_token ? 0 : -1;
}

/* Cryptographer's MultiFernet: the file's iteration count first, then the
 * others it tries. */
static SecStr *proxy_decrypt(const ProxyEntry *p, const SecStr *password)
{
    guint64 counts[] = {p->iterations, 1200000, 100000};
    guint8 key[32];
    SecStr *rt = NULL;
    struct tokend_error ignored = TOKEND_ERROR_INIT;

    for (size_t i = 0; i < G_N_ELEMENTS(counts) && !rt; i++) {
        if (i > 0 && counts[i] == p->iterations)
            continue;
        if (import_fernet_key(password, p->salt, p->salt_len, counts[i], key, &ignored) == 0)
            rt = import_fernet_decrypt(p->refresh_token, key);
    }
    explicit_bzero(key, sizeof(key));
    error_clear(&ignored);
    return rt;
}

static int read_proxy(const char *file, const char *username, ImportAskPassword ask, ImportFound *f,
                      struct tokend_error *e)
{
    g_autoptr(SecStr) config = read_file(file, e);
    g_autoptr(ProxyEntry) p = NULL;
    g_autoptr(SecStr) password = NULL;
    g_autofree char *prompt = NULL;

    if (!config || !(p = import_parse_proxy_config(config->data, config->len, username, e)))
        return -1;
    prompt = g_strdup_printf("Password of %s at email-oauth2-proxy: ", p->section);
    if (!(password = ask(prompt, e)))
        return -1;
    f->refresh_token = proxy_decrypt(p, password);
    if (!f->refresh_token)
        return error_set(e, TOKEND_EX_DATAERR,
                         "the password does not decrypt [%s]'s "
                         "refresh_token (it is the one the mail client gives the proxy)",
                         p->section);
    f->client_id = g_steal_pointer(&p->client_id);
    return 0;
}

/* pizauth's dump: the account is named in pizauth's config, and defaults
 * to the tokend account's name (see verbs.c). */
static int read_pizauth(const char *file, const char *account, ImportFound *f,
                        struct tokend_error *e)
{
    g_autoptr(SecStr) dump = read_file(file, e);
    g_autoptr(SecStr) plain = NULL;

    if (!dump || !(plain = import_pizauth_open((const guint8 *)dump->data, dump->len, e)))
        return -1;
    f->refresh_token = import_parse_pizauth((const guint8 *)plain->data, plain->len,
                                            account ? account : "", &f->client_id, e);
    return f->refresh_token ? 0 : -1;
}

int import_read(enum import_format fmt, const char *file, const char *username,
                ImportAskPassword ask, ImportFound **out, struct tokend_error *e)
{
    g_autoptr(ImportFound) f = g_new0(ImportFound, 1);
    int r = -1;

    switch (fmt) {
    case IMPORT_FORMAT_FETCHMAIL_OAUTH2:
        r = read_fetchmail(file, f, e);
        break;
    case IMPORT_FORMAT_MUTT_OAUTH2:
    case IMPORT_FORMAT_OAMA:
        r = read_gpg_json(file, f, e);
        break;
    case IMPORT_FORMAT_EMAIL_OAUTH2_PROXY:
        r = read_proxy(file, username, ask, f, e);
        break;
    case IMPORT_FORMAT_PIZAUTH:
        r = read_pizauth(file, username, f, e);
        break;
    }
    if (r < 0) {
        error_prefix(e, "%s %s", import_format_name(fmt), file);
        return -1;
    }
    *out = g_steal_pointer(&f);
    return 0;
}
