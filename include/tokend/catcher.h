#pragma once
/* The loopback redirect catcher (RFC 8252): a tiny HTTP server on
 * 127.0.0.1 and/or ::1, only during the sign-in, that takes the one redirect
 * carrying this attempt's state and shows the user a page. */

#include "tokend/error.h"
#include "tokend/oauth.h"

typedef struct catcher Catcher;

/* Listen for redirect_uri (http://127.0.0.1/..., http://localhost/...,
 * http://[::1]/...; an ephemeral port unless the URI names one). */
Catcher *catcher_new(const char *redirect_uri, const char *expected_state, struct tokend_error *e);
/* The redirect URI with the port we listen on, as sent to the server. */
const char *catcher_redirect_uri(const Catcher *c);
/* Wait (at most timeout_s) for the redirect with our state. */
int catcher_wait(Catcher *c, int timeout_s, RedirectParams **out, struct tokend_error *e);
/* Readable (poll(2)) once the redirect has arrived, so that the caller can
 * wait for it beside other input; catcher_wait then returns at once. */
int catcher_fd(const Catcher *c);
/* Take, in place of the browser's, a redirect the user pasted: the address
 * of the page the browser ended on.  Its scheme, host, port and path must
 * be the redirect URI's and its state this sign-in's; a bare code or a
 * query alone cannot be checked and is refused.  Once one is taken the
 * catcher answers every later redirect as done.  Fails (e says why) on a
 * paste that does not fit, or when the browser's redirect came first. */
int catcher_take_pasted(Catcher *c, const RedirectParams *p, struct tokend_error *e);
void catcher_free(Catcher *c);
/* A redirect URI that the catcher can serve (http and a loopback host). */
bool catcher_handles(const char *redirect_uri);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Catcher, catcher_free)
