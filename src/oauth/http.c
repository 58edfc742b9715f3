#include <string.h>
#include <curl/curl.h>

#include "tokend-config.h"
#include "tokend/http.h"
#include "tokend/shared_curl.h"
#include "tokend/log.h"
#include "tokend/uri.h"

#define RESPONSE_MAX_BYTES (1024 * 1024)
#define CONNECT_TIMEOUT_MS 10000L
#define REQUEST_TIMEOUT_MS 30000L

struct http {
    CURL *curl;
    char *ca_file;
    long timeout_ms;  /* the whole request; REQUEST_TIMEOUT_MS unless set */
    size_t max_bytes; /* a lower cap than RESPONSE_MAX_BYTES, or 0 */
    SecStr *sink;     /* the body being received under that cap */
};

static gsize curl_ready;

Http *http_new(const char *ca_file)
{
    Http *h;

    if (g_once_init_enter(&curl_ready))
        g_once_init_leave(&curl_ready, curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 1 : 2);
    h = g_new0(Http, 1);
    h->curl = curl_easy_init();
    h->ca_file = g_strdup(ca_file);
    h->timeout_ms = REQUEST_TIMEOUT_MS;
    return h;
}

void http_free(Http *h)
{
    if (!h)
        return;
    if (h->curl)
        curl_easy_cleanup(h->curl);
    g_free(h->ca_file);
    g_free(h);
}

void http_set_timeout(Http *h, int seconds)
{
    h->timeout_ms = seconds > 0 ? seconds * 1000L : REQUEST_TIMEOUT_MS;
}

void http_set_max_bytes(Http *h, size_t max_bytes)
{
    h->max_bytes = MIN(max_bytes, (size_t)RESPONSE_MAX_BYTES);
}

static size_t on_body_capped(char *data, size_t size, size_t nmemb, void *user)
{
    Http *h = user;
    size_t n = size * nmemb;

    if (h->sink->len + n > h->max_bytes)
        return CURL_WRITEFUNC_ERROR;
    secstr_append(h->sink, data, n);
    return n;
}

/* Under http_set_max_bytes: the lower cap, on the body and in its message. */
static void cap_body(Http *h, SecStr *body)
{
    h->sink = body;
    curl_easy_setopt(h->curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->max_bytes);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_body_capped);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, h);
}

static int capped_error(Http *h, CURLcode rc, const char *url, struct tokend_error *e)
{
    if (h->max_bytes && (rc == CURLE_WRITE_ERROR || rc == CURLE_FILESIZE_EXCEEDED))
        return error_set(e, TOKEND_EX_DATAERR, "the response from %s is larger than %zu bytes", url,
                         h->max_bytes);
    return 0;
}

void http_response_free(HttpResponse *r)
{
    if (!r)
        return;
    secstr_free(r->body);
    g_free(r->content_type);
    g_free(r);
}

static bool host_is_loopback(const char *host)
{
    return uri_host_is_loopback(host);
}

static int url_parts(const char *url, char **scheme, char **host)
{
    g_autoptr(CURLU) u = curl_url();

    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        return -1;
    if (curl_url_get(u, CURLUPART_SCHEME, scheme, 0) != CURLUE_OK)
        return -1;
    if (curl_url_get(u, CURLUPART_HOST, host, 0) != CURLUE_OK) {
        curl_free(*scheme);
        *scheme = NULL;
        return -1;
    }
    return 0;
}

static bool url_is_loopback(const char *url)
{
    char *scheme = NULL, *host = NULL;
    bool loop = url_parts(url, &scheme, &host) == 0 && host_is_loopback(host);

    curl_free(scheme);
    curl_free(host);
    return loop;
}

int http_check_url(const char *url, struct tokend_error *e)
{
    char *scheme = NULL, *host = NULL;
    int r = 0;

    if (!url)
        return error_set(e, TOKEND_EX_CONFIG, "no URL configured for this request");
    if (url_parts(url, &scheme, &host) < 0)
        return error_set(e, TOKEND_EX_CONFIG, "\"%s\" is not a valid URL", url);
    if (g_ascii_strcasecmp(scheme, "https") != 0 &&
        !(g_ascii_strcasecmp(scheme, "http") == 0 && host_is_loopback(host)))
        r = error_set(e, TOKEND_EX_CONFIG,
                      "refusing %s: only https:// is allowed (http:// only to loopback)", url);
    curl_free(scheme);
    curl_free(host);
    return r;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    SecStr *body = user;
    size_t n = size * nmemb;

    if (body->len + n > RESPONSE_MAX_BYTES)
        return CURL_WRITEFUNC_ERROR;
    secstr_append(body, data, n);
    return n;
}

static int transport_error(CURLcode rc, const char *url, struct tokend_error *e)
{
    g_autofree char *host = NULL;
    char *scheme = NULL, *h = NULL;

    if (url_parts(url, &scheme, &h) == 0)
        host = g_strdup(h);
    curl_free(scheme);
    curl_free(h);
    switch (rc) {
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
        return error_set(e, TOKEND_EX_DATAERR, "the response from %s is larger than %d bytes", host,
                         RESPONSE_MAX_BYTES);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        error_set(e, TOKEND_EX_TEMPFAIL, "the TLS certificate of %s is not trusted (%s)", host,
                  curl_easy_strerror(rc));
        error_set_hint(e, "check ca_file, or the network you are on");
        return -1;
    case CURLE_OPERATION_TIMEDOUT:
        error_set(e, TOKEND_EX_TEMPFAIL, "%s did not answer in time", host);
        error_set_hint(e, "try again later");
        return -1;
    default:
        error_set(e, TOKEND_EX_TEMPFAIL, "cannot reach %s: %s", host, curl_easy_strerror(rc));
        error_set_hint(e, "try again later");
        return -1;
    }
}

/* What a POST sends: a form, or a body of another type. */
struct post {
    const char *data;
    size_t len;
    const char *type; /* the Content-Type header line */
};

static struct curl_slist *setup(CURL *c, const char *ca_file, long timeout_ms, const char *url,
                                const struct post *form, const SecStr *basic, SecStr *body)
{
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");

    if (form)
        headers = curl_slist_append(headers, form->type);
    curl_easy_setopt(c, CURLOPT_URL, url);
    /* Loopback (the test peers, a local relay) never goes through a proxy;
     * other hosts keep libcurl's https_proxy, ALL_PROXY and NO_PROXY. */
    if (url_is_loopback(url))
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)RESPONSE_MAX_BYTES);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "tokend/" TOKEND_VERSION);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    if (basic) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, basic->data);
    }
    if (form) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, form->data);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)form->len);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    log_verbose("%s %s", form ? "POST" : "GET", url);
    return headers;
}

/* After a transfer: the response, or the transport error. */
static int finish(CURL *c, CURLcode rc, const char *url, HttpResponse *r, struct tokend_error *e)
{
    curl_off_t retry = 0;
    char *ctype = NULL;

    curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
    if (rc != CURLE_OK)
        return transport_error(rc, url, e);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype) == CURLE_OK && ctype)
        r->content_type = g_strdup(ctype);
    if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &retry) == CURLE_OK && retry > 0)
        r->retry_after = (int)MIN(retry, 86400);
    log_verbose("HTTP %ld, %zu bytes", r->status, r->body->len);
    return 0;
}

/* One request: a form POSTed (or a GET without one), with HTTP Basic
 * credentials or a bearer token where given. */
static int perform(Http *h, const char *url, const struct post *form, const SecStr *basic,
                   const SecStr *bearer, HttpResponse **out, struct tokend_error *e)
{
    g_autoptr(HttpResponse) r = g_new0(HttpResponse, 1);
    struct curl_slist *headers;
    CURLcode rc;
    bool ok;

    if (http_check_url(url, e) < 0)
        return -1;
    if (!h->curl)
        return error_set(e, TOKEND_EX_SOFTWARE, "cannot initialise libcurl");
    r->body = secstr_new(1024);
    curl_easy_reset(h->curl);
    headers = setup(h->curl, h->ca_file, h->timeout_ms, url, form, basic, r->body);
    if (h->max_bytes)
        cap_body(h, r->body);
    if (bearer) {
        curl_easy_setopt(h->curl, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
        curl_easy_setopt(h->curl, CURLOPT_XOAUTH2_BEARER, bearer->data);
    }
    rc = curl_easy_perform(h->curl);
    curl_slist_free_all(headers);
    h->sink = NULL;
    ok = capped_error(h, rc, url, e) == 0 && finish(h->curl, rc, url, r, e) == 0;
    /* libcurl's copy of the token goes now, not at the next request. */
    if (bearer)
        curl_easy_setopt(h->curl, CURLOPT_XOAUTH2_BEARER, NULL);
    if (!ok)
        return -1;
    *out = g_steal_pointer(&r);
    return 0;
}

#define FORM_TYPE "Content-Type: application/x-www-form-urlencoded"

int http_request_auth(Http *h, const char *url, const SecStr *form, const SecStr *basic,
                      HttpResponse **out, struct tokend_error *e)
{
    struct post p = {form ? form->data : NULL, form ? form->len : 0, FORM_TYPE};

    return perform(h, url, form ? &p : NULL, basic, NULL, out, e);
}

int http_request(Http *h, const char *url, const SecStr *form, HttpResponse **out,
                 struct tokend_error *e)
{
    return http_request_auth(h, url, form, NULL, out, e);
}

int http_post_bearer(Http *h, const char *url, const char *content_type, const char *data,
                     size_t len, const SecStr *token, HttpResponse **out, struct tokend_error *e)
{
    g_autofree char *type = g_strconcat("Content-Type: ", content_type, NULL);
    struct post p = {data, len, type};

    return perform(h, url, &p, NULL, token, out, e);
}

int http_get_bearer(Http *h, const char *url, const SecStr *token, HttpResponse **out,
                    struct tokend_error *e)
{
    return perform(h, url, NULL, NULL, token, out, e);
}

/* Many requests at once over libcurl's multi interface: connections (and
 * TLS sessions) are reused between requests to the same server. */

struct transfer {
    CURL *curl;
    struct curl_slist *headers;
    char *url;
    HttpResponse *response;
    http_done_fn done;
    void *user;
};

struct http_multi {
    CURLM *multi;
    int running;
};

HttpMulti *http_multi_new(int max_connections)
{
    HttpMulti *m = g_new0(HttpMulti, 1);

    if (g_once_init_enter(&curl_ready))
        g_once_init_leave(&curl_ready, curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 1 : 2);
    m->multi = curl_multi_init();
    curl_multi_setopt(m->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)max_connections);
    curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_connections);
    return m;
}

static void transfer_free(struct transfer *t)
{
    curl_easy_cleanup(t->curl);
    curl_slist_free_all(t->headers);
    http_response_free(t->response);
    g_free(t->url);
    g_free(t);
}

int http_multi_add(HttpMulti *m, const char *url, const char *ca_file, const SecStr *form,
                   const SecStr *basic, http_done_fn done, void *user, struct tokend_error *e)
{
    struct post post = {form ? form->data : NULL, form ? form->len : 0, FORM_TYPE};
    struct transfer *t;
    CURLMcode mc;

    if (http_check_url(url, e) < 0)
        return -1;
    if (!m->multi)
        return error_set(e, TOKEND_EX_SOFTWARE, "cannot initialise libcurl");
    t = g_new0(struct transfer, 1);
    t->curl = curl_easy_init();
    if (!t->curl) {
        g_free(t);
        return error_set(e, TOKEND_EX_SOFTWARE, "cannot initialise libcurl");
    }
    t->url = g_strdup(url);
    t->response = g_new0(HttpResponse, 1);
    t->response->body = secstr_new(1024);
    t->done = done;
    t->user = user;
    t->headers = setup(t->curl, ca_file, REQUEST_TIMEOUT_MS, url, form ? &post : NULL, basic,
                       t->response->body);
    curl_easy_setopt(t->curl, CURLOPT_PRIVATE, t);
    if ((mc = curl_multi_add_handle(m->multi, t->curl)) != CURLM_OK) {
        error_set(e, TOKEND_EX_SOFTWARE, "cannot queue the request to %s: %s", url,
                  curl_multi_strerror(mc));
        transfer_free(t);
        return -1;
    }
    m->running++;
    return 0;
}

static void transfer_done(HttpMulti *m, CURL *c, CURLcode rc)
{
    struct transfer *t = NULL;
    struct tokend_error e = TOKEND_ERROR_INIT;
    HttpResponse *r;

    curl_easy_getinfo(c, CURLINFO_PRIVATE, (char **)&t);
    curl_multi_remove_handle(m->multi, c);
    m->running--;
    r = finish(c, rc, t->url, t->response, &e) == 0 ? g_steal_pointer(&t->response) : NULL;
    curl_easy_cleanup(c);
    curl_slist_free_all(t->headers);
    /* The callback may add transfers. */
    t->done(t->user, r, &e);
    error_clear(&e);
    http_response_free(t->response);
    g_free(t->url);
    g_free(t);
}

void http_multi_run(HttpMulti *m)
{
    while (m->running > 0) {
        int still = 0, queued = 0;
        CURLMsg *msg;

        curl_multi_perform(m->multi, &still);
        while ((msg = curl_multi_info_read(m->multi, &queued)) != NULL)
            if (msg->msg == CURLMSG_DONE)
                transfer_done(m, msg->easy_handle, msg->data.result);
        if (m->running > 0)
            curl_multi_poll(m->multi, NULL, 0, 1000, NULL);
    }
}

void http_multi_free(HttpMulti *m)
{
    if (!m)
        return;
    if (m->multi)
        curl_multi_cleanup(m->multi);
    g_free(m);
}
