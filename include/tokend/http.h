#pragma once
/* HTTPS requests through libcurl: certificate verification always on,
 * http:// only to loopback hosts, bounded time and size, no redirects. */

#include <stdbool.h>
#include "tokend/error.h"
#include "tokend/secstr.h"

typedef struct http_response {
    long status;
    SecStr *body;        /* may hold tokens: wiped when freed */
    char *content_type;  /* or NULL */
    int retry_after;     /* seconds from Retry-After, 0 if none */
} HttpResponse;

typedef struct http Http;

Http *http_new(const char *ca_file);
void http_free(Http *h);
/* POST a form (body may hold secrets) or GET when form is NULL.  A transport
 * failure returns -1 with e set (TEMPFAIL for network trouble); any HTTP
 * status is a success here: the caller judges it. */
int http_request(Http *h, const char *url, const SecStr *form, HttpResponse **out,
                 struct tokend_error *e);
/* Check that a URL may be used: https, or http to a loopback address. */
int http_check_url(const char *url, struct tokend_error *e);
bool http_url_is_loopback(const char *url);
void http_response_free(HttpResponse *r);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Http, http_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HttpResponse, http_response_free)
