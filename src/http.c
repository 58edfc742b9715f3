#include <string.h>
#include <curl/curl.h>

#include "tokend-config.h"
#include "tokend/http.h"
#include "tokend/log.h"

#define RESPONSE_MAX_BYTES (1024 * 1024)
#define CONNECT_TIMEOUT_MS 10000L
#define REQUEST_TIMEOUT_MS 30000L

struct http {
    CURL *curl;
    char *ca_file;
};

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CURLU, curl_url_cleanup)

static gsize curl_ready;

Http *http_new(const char *ca_file)
{
    Http *h;

    if (g_once_init_enter(&curl_ready))
        g_once_init_leave(&curl_ready, curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 1 : 2);
    h = g_new0(Http, 1);
    h->curl = curl_easy_init();
    h->ca_file = g_strdup(ca_file);
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
    return g_strcmp0(host, "127.0.0.1") == 0 || g_strcmp0(host, "[::1]") == 0 ||
           g_strcmp0(host, "localhost") == 0;
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

bool http_url_is_loopback(const char *url)
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
        return error_set(e, TOKEND_EX_DATAERR, "the response from %s is larger than %d bytes",
                         host, RESPONSE_MAX_BYTES);
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

static void setup(Http *h, const char *url, const SecStr *form, SecStr *body,
                  struct curl_slist *headers)
{
    CURL *c = h->curl;

    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, REQUEST_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (h->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)RESPONSE_MAX_BYTES);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "tokend/" TOKEND_VERSION);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    if (form) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, form->data);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)form->len);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
}

int http_request(Http *h, const char *url, const SecStr *form, HttpResponse **out,
                 struct tokend_error *e)
{
    g_autoptr(HttpResponse) r = g_new0(HttpResponse, 1);
    struct curl_slist *headers = NULL;
    curl_off_t retry = 0;
    char *ctype = NULL;
    CURLcode rc;

    if (http_check_url(url, e) < 0)
        return -1;
    if (!h->curl)
        return error_set(e, TOKEND_EX_SOFTWARE, "cannot initialise libcurl");
    r->body = secstr_new(1024);
    headers = curl_slist_append(headers, "Accept: application/json");
    if (form)
        headers = curl_slist_append(headers,
                                    "Content-Type: application/x-www-form-urlencoded");
    setup(h, url, form, r->body, headers);
    log_verbose("%s %s", form ? "POST" : "GET", url);
    rc = curl_easy_perform(h->curl);
    curl_slist_free_all(headers);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, NULL);
    if (rc != CURLE_OK)
        return transport_error(rc, url, e);
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &r->status);
    if (curl_easy_getinfo(h->curl, CURLINFO_CONTENT_TYPE, &ctype) == CURLE_OK && ctype)
        r->content_type = g_strdup(ctype);
    if (curl_easy_getinfo(h->curl, CURLINFO_RETRY_AFTER, &retry) == CURLE_OK && retry > 0)
        r->retry_after = (int)MIN(retry, 86400);
    log_verbose("HTTP %ld, %zu bytes", r->status, r->body->len);
    *out = g_steal_pointer(&r);
    return 0;
}
