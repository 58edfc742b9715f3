#include <string.h>
#include <curl/curl.h>

#include "tokend/mailcheck.h"
#include "tokend/log.h"
#include "tokend/uri.h"

#define CHECK_TIMEOUT_MS 30000L

const char *mail_service_name(enum mail_service s)
{
    switch (s) {
    case MAIL_SERVICE_IMAP:
        return "IMAP";
    case MAIL_SERVICE_SMTP:
        return "SMTP";
    }
    return "?";
}

/* Keep the server's last line (never what we sent: that holds the token). */
static int on_debug(CURL *c, curl_infotype type, char *data, size_t size, void *user)
{
    GString *last = user;

    (void)c;
    if (type == CURLINFO_HEADER_IN && size > 0) {
        g_string_assign(last, "");
        g_string_append_len(last, data, (gssize)MIN(size, 300));
        g_strchomp(last->str);
        last->len = strlen(last->str);
    }
    return 0;
}

static bool is_loopback(const char *host)
{
    return uri_host_is_loopback(host);
}

static char *service_url(enum mail_service s, const char *host, int port)
{
    bool implicit = port == 993 || port == 465;
    const char *scheme =
        s == MAIL_SERVICE_IMAP ? (implicit ? "imaps" : "imap") : (implicit ? "smtps" : "smtp");
    /* GUri puts an IPv6 address in brackets. */
    g_autoptr(GUri) u = g_uri_build(G_URI_FLAGS_NONE, scheme, NULL, host, port, "/", NULL, NULL);

    return g_uri_to_string(u);
}

int mailcheck_login(enum mail_service s, const char *host, int port, const char *user,
                    const SecStr *token, const char *ca_file, struct tokend_error *e)
{
    g_autofree char *url = NULL;
    g_autoptr(GString) last = g_string_new(NULL);
    CURL *c;
    CURLcode rc;

    if (!host || !user)
        return error_set(e, TOKEND_EX_CONFIG, "set %s_host and username to check %s",
                         s == MAIL_SERVICE_IMAP ? "imap" : "smtp", mail_service_name(s));
    url = service_url(s, host, port);
    c = curl_easy_init();
    if (!c)
        return error_set(e, TOKEND_EX_SOFTWARE, "cannot initialise libcurl");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "imap,imaps,smtp,smtps");
    curl_easy_setopt(c, CURLOPT_USERNAME, user);
    curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, token->data);
    curl_easy_setopt(c, CURLOPT_USE_SSL, is_loopback(host) ? CURLUSESSL_TRY : CURLUSESSL_ALL);
    if (is_loopback(host))
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, CHECK_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "NOOP");
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(c, CURLOPT_DEBUGDATA, last);
    curl_easy_setopt(c, CURLOPT_VERBOSE, 1L); /* feeds on_debug only */
    rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    if (rc == CURLE_OK) {
        log_verbose("%s: %s", url, last->str);
        return 0;
    }
    if (rc == CURLE_LOGIN_DENIED) {
        error_set(e, TOKEND_EX_NOPERM, "%s login to %s refused the token (%s)",
                  mail_service_name(s), host, last->len ? last->str : "no reason given");
        error_set_hint(e, "check username and scopes, or run: tokend refresh --force");
        return -1;
    }
    error_set(e, TOKEND_EX_TEMPFAIL, "%s check of %s:%d failed: %s%s%s", mail_service_name(s), host,
              port, curl_easy_strerror(rc), last->len ? "; server said: " : "", last->str);
    return -1;
}
