/* The terminal side of a sign-in: the URL shown (and the browser opened),
 * a paste of the page the sign-in ended on read from stdin, alone or in a
 * race with the loopback catcher.  The one flow module that reads the
 * terminal; it never sees a token, only the redirect it hands back. */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "flow_internal.h"
#include "tokend/browser.h"
#include "tokend/catcher.h"

#define PASTE_MAX 65536
#define PASTE_READ 1024

void flow_show_url(const Account *a, const char *url, bool open_browser)
{
    bool opened = open_browser && browser_open(url);

    fprintf(stderr, "tokend: %s: %s this URL to sign in:\n%s\n", a->name,
            opened ? "a browser was opened; if it did not appear, open" : "open", url);
}

static int read_pasted(int timeout_s, char **out, struct tokend_error *e)
{
    g_autoptr(GString) line = g_string_sized_new(1024);
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_s * G_USEC_PER_SEC;
    char buf[1024];

    if (isatty(STDIN_FILENO))
        fprintf(stderr, "Paste the address of the page the sign-in ended on, then Enter:\n");
    while (!strchr(line->str, '\n')) {
        int left = (int)((deadline - g_get_monotonic_time()) / 1000);
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        ssize_t n;

        if (left <= 0 || poll(&pfd, 1, left) == 0)
            return error_set(e, TOKEND_EX_TEMPFAIL, "nothing was pasted within %d s", timeout_s);
        n = read(STDIN_FILENO, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        g_string_append_len(line, buf, n);
        if (line->len > PASTE_MAX)
            return error_set(e, TOKEND_EX_DATAERR, "the pasted text is too long");
    }
    explicit_bzero(buf, sizeof(buf));
    *out = g_strdup(line->str);
    explicit_bzero(line->str, line->len);
    return 0;
}

int flow_wait_manual(const Account *a, RedirectParams **params, struct tokend_error *e)
{
    char *pasted = NULL;
    int r;

    if (read_pasted(a->login_timeout, &pasted, e) < 0)
        return -1;
    r = oauth_parse_pasted(pasted, params, e);
    secure_free_str(pasted);
    return r;
}

/* What came on stdin so far, waiting for its end of line; wiped when freed
 * since it may hold a code. */
struct paste_input {
    GString *text;
    bool open; /* stdin may still bring a paste */
};

static void paste_input_forget(struct paste_input *in, gsize used)
{
    explicit_bzero(in->text->str, used);
    g_string_erase(in->text, 0, (gssize)used);
}

static bool catcher_answered(const Catcher *c)
{
    struct pollfd pfd = {.fd = catcher_fd(c), .events = POLLIN};

    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

/* One pasted line: 1 when it is this sign-in's redirect (now *out; the
 * catcher takes no other), else 0 after one line saying why not. */
static int paste_try(const Account *a, Catcher *c, const char *line, RedirectParams **out)
{
    g_autoptr(RedirectParams) p = NULL;
    struct tokend_error pe = TOKEND_ERROR_INIT;

    if (line[strspn(line, " \t\r")] == '\0')
        return 0;
    if (oauth_parse_pasted(line, &p, &pe) == 0 && catcher_take_pasted(c, p, &pe) == 0) {
        *out = g_steal_pointer(&p);
        return 1;
    }
    if (catcher_answered(c)) {
        /* The browser came first: that is the answer, nothing to report. */
        error_clear(&pe);
        return 0;
    }
    error_prefix(&pe, "paste not taken");
    if (!pe.hint)
        error_set_hint(&pe, "paste the whole address of the page the browser ended on, or "
                            "finish the sign-in in the browser");
    error_print(&pe, a->name);
    error_clear(&pe);
    return 0;
}

/* Read what stdin has and try each complete line (and what is left when
 * stdin ends).  Returns 1 when a paste won. */
static int paste_read(const Account *a, Catcher *c, struct paste_input *in, RedirectParams **out)
{
    char buf[PASTE_READ];
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    const char *nl;
    int won = 0;

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n <= 0) {
        in->open = false;
        won = paste_try(a, c, in->text->str, out);
        paste_input_forget(in, in->text->len);
        return won;
    }
    g_string_append_len(in->text, buf, n);
    explicit_bzero(buf, sizeof(buf));
    while (!won && (nl = memchr(in->text->str, '\n', in->text->len))) {
        gsize used = (gsize)(nl - in->text->str) + 1;
        in->text->str[used - 1] = '\0';
        won = paste_try(a, c, in->text->str, out);
        paste_input_forget(in, used);
    }
    if (in->text->len > PASTE_MAX) {
        fprintf(stderr, "tokend: %s: paste not taken: the pasted text is too long\n", a->name);
        paste_input_forget(in, in->text->len);
    }
    return won;
}

/* Read a paste beside the catcher unless stdin is closed, or is our
 * controlling terminal while we run in the background (reading would stop
 * us).  Where stdin is at its end (</dev/null) the catcher waits alone. */
static bool paste_possible(const Catcher *c)
{
    pid_t foreground;

    if (catcher_fd(c) == STDIN_FILENO || fcntl(STDIN_FILENO, F_GETFL) < 0)
        return false;
    foreground = isatty(STDIN_FILENO) ? tcgetpgrp(STDIN_FILENO) : -1;
    return foreground < 0 || foreground == getpgrp();
}

/* The browser's redirect came: keep half-typed text with a code in it
 * from reaching the shell. */
static int catcher_won(Catcher *c, const struct paste_input *in, RedirectParams **out,
                       struct tokend_error *e)
{
    if (in->open && isatty(STDIN_FILENO))
        tcflush(STDIN_FILENO, TCIFLUSH);
    return catcher_wait(c, 0, out, e);
}

static int race_loop(const Account *a, Catcher *c, struct paste_input *in, RedirectParams **out,
                     struct tokend_error *e)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)a->login_timeout * G_USEC_PER_SEC;

    for (int round = 0;; round++) {
        struct pollfd pfd[2] = {{.fd = catcher_fd(c), .events = POLLIN},
                                {.fd = in->open ? STDIN_FILENO : -1, .events = POLLIN}};
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;

        if (round > 0 && left <= 0)
            break;
        if (poll(pfd, 2, round == 0 ? 0 : (int)MIN(left, G_MAXINT)) < 0 && errno != EINTR)
            return error_set(e, TOKEND_EX_SOFTWARE, "cannot wait for the sign-in: %s",
                             g_strerror(errno));
        if (pfd[0].revents & POLLIN)
            return catcher_won(c, in, out, e);
        if (pfd[1].revents & POLLNVAL)
            in->open = false;
        else if (pfd[1].revents && paste_read(a, c, in, out) == 1)
            return 0;
        if (round == 0 && in->open)
            fprintf(stderr,
                    "tokend: %s: waiting for the browser to come back to %s; "
                    "or paste the address of the page the browser ended on:\n",
                    a->name, catcher_redirect_uri(c));
    }
    error_set(e, TOKEND_EX_TEMPFAIL, "no sign-in arrived within %d s", a->login_timeout);
    error_set_hint(e, "run tokend obtain again; if the browser runs on another machine, paste "
                      "the address of the page it ended on");
    return -1;
}

/* Wait for the browser's redirect at the catcher and, at the same time,
 * for the user to paste the address of the page the browser ended on (on
 * another machine that page fails to load).  The first redirect of this
 * sign-in wins, and the other side is dropped; a paste that is not one is
 * refused in a line and the wait goes on, up to login_timeout. */
int flow_wait_race(const Account *a, Catcher *c, RedirectParams **out, struct tokend_error *e)
{
    /* Room for the longest paste, so that no copy of a code is left
     * behind by a reallocation. */
    struct paste_input in = {g_string_sized_new(PASTE_MAX + 2 * PASTE_READ), paste_possible(c)};
    int r = race_loop(a, c, &in, out, e);

    explicit_bzero(in.text->str, in.text->allocated_len);
    g_string_free(in.text, TRUE);
    return r;
}
