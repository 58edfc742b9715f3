/* Signing in with the device authorization grant (RFC 8628), for machines
 * without a browser: the user opens a URL elsewhere and types a code. */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "flow_internal.h"
#include "tokend/browser.h"
#include "tokend/log.h"

#define SLOW_DOWN_STEP_S 5

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Sleep up to `seconds`, waking early on Ctrl-C. */
static void nap(int seconds)
{
    struct timespec step = {0, 100 * 1000 * 1000};

    for (int i = 0; i < seconds * 10 && !interrupted; i++)
        nanosleep(&step, NULL);
}

static void show_code(const Account *a, const DeviceAuth *d, bool open_browser)
{
    const char *url =
        d->verification_uri_complete ? d->verification_uri_complete : d->verification_uri;
    bool opened = open_browser && browser_open(url);

    fprintf(stderr, "tokend: %s: to sign in, open %s and enter the code %s\n", a->name,
            d->verification_uri, d->user_code);
    if (d->verification_uri_complete)
        fprintf(stderr, "tokend: %s: or open this URL, which carries the code:\n%s\n", a->name,
                d->verification_uri_complete);
    if (opened)
        fprintf(stderr, "tokend: %s: a browser was opened\n", a->name);
}

static int poll_until_done(Http *http, const FlowClient *client, const DeviceAuth *d,
                           TokenResponse **t, struct tokend_error *e)
{
    gint64 deadline = g_get_monotonic_time() + d->expires_in * G_USEC_PER_SEC;
    int interval = d->interval;

    while (!interrupted) {
        enum device_poll state = DEVICE_POLL_PENDING;

        nap(interval);
        if (interrupted)
            break;
        if (g_get_monotonic_time() > deadline) {
            error_set(e, TOKEND_EX_NOPERM, "the code expired before the sign-in was done");
            return -1;
        }
        if (oauth_device_poll(http, &client->oauth, d->device_code, &state, t, e) < 0)
            return -1;
        switch (state) {
        case DEVICE_POLL_PENDING:
            break;
        case DEVICE_POLL_SLOW_DOWN:
            interval += SLOW_DOWN_STEP_S;
            log_verbose("the server asks to poll more slowly: every %d s", interval);
            break;
        case DEVICE_POLL_DONE:
            return 0;
        }
    }
    error_set(e, TOKEND_EX_INTERRUPTED, "sign-in interrupted");
    return -1;
}

/* A Conditional Access policy may block the device flow alone (AADSTS53003)
 * while the browser flow is allowed: that is the next thing to try. */
static void hint_browser_flow(const Account *a, struct tokend_error *e)
{
    if (!oauth_error_has_code(e, 53003))
        return;
    if (a->flow == FLOW_KIND_DEVICE)
        error_set_hint(e,
                       "the policy may block only the device flow: set flow = code for this "
                       "account and sign in with the browser: tokend obtain %s",
                       a->name);
    else
        error_set_hint(e,
                       "the policy may block only the device flow: sign in with the browser "
                       "instead: tokend obtain %s (without --device)",
                       a->name);
}

int flow_device(const Account *a, FlowClient *client, Http *http, bool open_browser,
                TokenResponse **t, struct tokend_error *e)
{
    g_autoptr(DeviceAuth) d = NULL;
    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    int r;

    /* Catch Ctrl-C before the user is told what to do. */
    interrupted = 0;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    r = oauth_device_start(http, &client->oauth, &d, e);
    if (r == 0) {
        show_code(a, d, open_browser);
        r = poll_until_done(http, client, d, t, e);
    }
    if (r < 0)
        hint_browser_flow(a, e);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return r;
}
