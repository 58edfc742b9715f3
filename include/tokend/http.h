#pragma once
/* HTTPS requests through libcurl: certificate verification always on,
 * http:// only to loopback hosts, bounded time and size, no redirects. */

#include <stdbool.h>
#include "tokend/error.h"
#include "tokend/secstr.h"

typedef struct http_response {
    long status;
    SecStr *body;       /* may hold tokens: wiped when freed */
    char *content_type; /* or NULL */
    int retry_after;    /* seconds from Retry-After, 0 if none */
} HttpResponse;

typedef struct http Http;

Http *http_new(const char *ca_file);
void http_free(Http *h);
/* Bound the whole of each request (default 30 s). */
void http_set_timeout(Http *h, int seconds);
/* Refuse responses larger than max_bytes (at most the built-in cap). */
void http_set_max_bytes(Http *h, size_t max_bytes);
/* POST a form (body may hold secrets) or GET when form is NULL.  A transport
 * failure returns -1 with e set (TEMPFAIL for network trouble); any HTTP
 * status is a success here: the caller judges it. */
int http_request(Http *h, const char *url, const SecStr *form, HttpResponse **out,
                 struct tokend_error *e);
/* The same with HTTP Basic authentication: basic is "USER:PASSWORD" (a
 * secret), or NULL for none. */
int http_request_auth(Http *h, const char *url, const SecStr *form, const SecStr *basic,
                      HttpResponse **out, struct tokend_error *e);
/* GET with the access token as RFC 6750 bearer credentials (OpenID Connect
 * userinfo); as http_request otherwise. */
int http_get_bearer(Http *h, const char *url, const SecStr *token, HttpResponse **out,
                    struct tokend_error *e);
/* POST data (not a secret: a message) of content_type with the access
 * token as RFC 6750 bearer credentials; as http_request otherwise. */
int http_post_bearer(Http *h, const char *url, const char *content_type, const char *data,
                     size_t len, const SecStr *token, HttpResponse **out, struct tokend_error *e);
/* Check that a URL may be used: https, or http to a loopback address. */
int http_check_url(const char *url, struct tokend_error *e);
void http_response_free(HttpResponse *r);

/* Many requests at once, reusing connections: at most max_connections to
 * one server.  done() gets the response (NULL and e set on a transport
 * error), which is then its own to free.  done() may add more transfers. */
typedef struct http_multi HttpMulti;
typedef void (*http_done_fn)(void *user, HttpResponse *r, struct tokend_error *e);

HttpMulti *http_multi_new(int max_connections);
int http_multi_add(HttpMulti *m, const char *url, const char *ca_file, const SecStr *form,
                   const SecStr *basic, http_done_fn done, void *user, struct tokend_error *e);
/* Run until every transfer (including ones added by callbacks) is done. */
void http_multi_run(HttpMulti *m);
void http_multi_free(HttpMulti *m);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Http, http_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HttpMulti, http_multi_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HttpResponse, http_response_free)
