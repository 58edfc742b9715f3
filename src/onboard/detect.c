#include <string.h>

#include "tokend/autoconfig.h"
#include "tokend/shared.h"
#include "tokend/detect.h"
#include "tokend/discovery.h"
#include "tokend/dns.h"
#include "tokend/http.h"
#include "tokend/log.h"
#include "tokend/uri.h"

void detection_free(Detection *d)
{
    if (!d)
        return;
    g_free(d->how);
    g_free(d->tenant);
    g_free(d->issuer);
    g_free(d->authorize_url);
    g_free(d->token_url);
    g_free(d->scopes);
    g_free(d->username);
    g_free(d->imap_host);
    g_free(d->smtp_host);
    g_free(d->pop_host);
    g_free(d);
}

char *detect_domain(const char *email)
{
    const char *at = strrchr(email, '@');

    if (!at || at == email || strlen(email) > 254 || !strchr(at + 1, '.') ||
        !uri_host_valid(at + 1) || g_hostname_is_ip_address(at + 1))
        return NULL;
    for (const char *p = email; p < at; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || strchr("\\#\"", *p))
            return NULL;
    return g_ascii_strdown(at + 1, -1);
}

static bool host_under(const char *host, const char *zone)
{
    size_t h = strlen(host), z = strlen(zone);

    return g_ascii_strcasecmp(host, zone) == 0 ||
           (h > z && host[h - z - 1] == '.' && g_ascii_strcasecmp(host + h - z, zone) == 0);
}

static Detection *found(const struct provider_preset *p, const char *tenant, char *how)
{
    Detection *d = g_new0(Detection, 1);

    d->provider = p;
    d->tenant = g_strdup(tenant);
    d->how = how;
    log_verbose("detect: %s: provider %s%s%s", how, p->name, tenant ? ", tenant " : "",
                tenant ? tenant : "");
    return d;
}

/* What follows "hotmail." and the like in consumer domains: a top-level
 * domain (fr, com) or a country's second level (co.uk, com.au). */
static bool country_suffix(const char *rest)
{
    const char *dot = strchr(rest, '.');

    if (!dot)
        return *rest != '\0';
    return dot - rest <= 3 && dot > rest && dot[1] && !strchr(dot + 1, '.');
}

static bool consumer_domain(const struct provider_preset *p, const char *domain)
{
    for (const char *const *d = p->consumer_domains; d && *d; d++)
        if (strcmp(domain, *d) == 0)
            return true;
    for (const char *const *x = p->consumer_prefixes; x && *x; x++)
        if (g_str_has_prefix(domain, *x) && country_suffix(domain + strlen(*x)))
            return true;
    return false;
}

/* The providers' own consumer domains, known without asking. */
static Detection *by_name(const char *domain)
{
    const struct provider_preset *p;

    for (size_t i = 0; (p = provider_at(i)) != NULL; i++)
        if (consumer_domain(p, domain))
            return found(p, p->consumer_tenant,
                         g_strdup_printf("%s is a %s consumer domain", domain, p->title));
    return NULL;
}

static Detection *by_mx_host(const char *domain, const char *host)
{
    const struct provider_preset *p;

    for (size_t i = 0; (p = provider_at(i)) != NULL; i++)
        for (const char *const *z = p->mx_hosts; z && *z; z++)
            if (host_under(host, *z))
                return found(p, p->mx_tenant_is_domain ? domain : NULL,
                             g_strdup_printf("the MX of %s (%s) is %s", domain, host,
                                             p->mail_service ? p->mail_service : p->title));
    return NULL;
}

static Detection *by_mx(const char *domain, struct tokend_error *e)
{
    g_autoptr(GPtrArray) mx = NULL;
    Detection *d;

    if (dns_mx(domain, &mx, e) < 0)
        return NULL;
    for (guint i = 0; i < mx->len; i++)
        log_verbose("detect: DNS: %s has MX %s", domain, (const char *)g_ptr_array_index(mx, i));
    for (guint i = 0; i < mx->len; i++)
        if ((d = by_mx_host(domain, g_ptr_array_index(mx, i))) != NULL)
            return d;
    if (mx->len == 0)
        log_verbose("detect: DNS: %s has no MX record", domain);
    return NULL;
}

/* ".../TENANT/v2.0" of a tenant's issuer: the tenant id. */
static char *tenant_of_issuer(const struct provider_preset *p, const char *body, size_t len)
{
    g_autoptr(cJSON) root = cJSON_ParseWithLength(body, len);
    const cJSON *iss = cJSON_GetObjectItemCaseSensitive(root, "issuer");
    g_autofree char *prefix = g_strconcat(p->authority_url, "/", NULL);
    g_auto(GStrv) parts = NULL;

    if (!cJSON_IsString(iss) || !g_str_has_prefix(iss->valuestring, prefix))
        return NULL;
    parts = g_strsplit(iss->valuestring + strlen(prefix), "/", 3);
    if (!parts[0] || g_strcmp0(parts[1], "v2.0") != 0 || !uri_tenant_valid(parts[0]))
        return NULL;
    return g_strdup(parts[0]);
}

static Detection *by_tenant_of(Http *h, const struct provider_preset *p, const char *domain)
{
    g_auto(GStrv) parts = g_strsplit(p->tenant_discovery_url, "{domain}", -1);
    g_autofree char *url = g_strjoinv(domain, parts);
    g_autoptr(HttpResponse) r = NULL;
    g_autofree char *tenant = NULL;
    struct tokend_error e = TOKEND_ERROR_INIT;

    if (http_request(h, url, NULL, &r, &e) < 0) {
        log_verbose("detect: %s tenant: %s", p->title, e.message);
        error_clear(&e);
        return NULL;
    }
    if (r->status != 200 || !(tenant = tenant_of_issuer(p, r->body->data, r->body->len))) {
        log_verbose("detect: %s tenant: %s is not a tenant (HTTP %ld)", p->title, domain,
                    r->status);
        return NULL;
    }
    return found(p, tenant,
                 g_strdup_printf("%s is a %s tenant (%s)", domain,
                                 p->mail_service ? p->mail_service : p->title, tenant));
}

/* The providers whose domains can be tenants: is this one? */
static Detection *by_tenant(Http *h, const char *domain)
{
    const struct provider_preset *p;
    Detection *d;

    for (size_t i = 0; (p = provider_at(i)) != NULL; i++)
        if (p->tenant_discovery_url && (d = by_tenant_of(h, p, domain)) != NULL)
            return d;
    return NULL;
}

/* The autoconfig documents of the domain, in Thunderbird's order; the
 * first good one wins.  A broken one is remembered in bad. */
static Autoconfig *fetch_autoconfig(Http *h, const char *email, const char *domain, char **where,
                                    struct tokend_error *bad)
{
    g_autofree char *q = g_uri_escape_string(email, NULL, FALSE);
    g_autofree char *u1 = g_strdup_printf("https://autoconfig.%s/mail/config-v1.1.xml?"
                                          "emailaddress=%s",
                                          domain, q);
    g_autofree char *u2 = g_strdup_printf("https://%s/.well-known/autoconfig/mail/"
                                          "config-v1.1.xml",
                                          domain);
    const char *urls[] = {u1, u2};

    for (size_t i = 0; i < G_N_ELEMENTS(urls); i++) {
        g_autoptr(HttpResponse) r = NULL;
        struct tokend_error e = TOKEND_ERROR_INIT;
        Autoconfig *ac = NULL;

        if (http_request(h, urls[i], NULL, &r, &e) == 0 && r->status != 200)
            error_set(&e, TOKEND_EX_CONFIG, "HTTP %ld", r->status);
        else if (r)
            ac = autoconfig_parse(r->body->data, r->body->len, email, &e);
        if (ac) {
            log_verbose("detect: autoconfig: found %s", urls[i]);
            *where = g_strdup(urls[i]);
            return ac;
        }
        log_verbose("detect: autoconfig: %s: %s", urls[i], e.message);
        if (e.status == TOKEND_EX_DATAERR && !bad->status) {
            error_move(bad, &e);
            error_prefix(bad, "%s", urls[i]);
        }
        error_clear(&e);
    }
    return NULL;
}

static void take_servers(Detection *d, Autoconfig *ac)
{
    d->imap_host = g_steal_pointer(&ac->imap.host);
    d->imap_port = ac->imap.port;
    d->smtp_host = g_steal_pointer(&ac->smtp.host);
    d->smtp_port = ac->smtp.port;
    d->pop_host = g_steal_pointer(&ac->pop.host);
    d->pop_port = ac->pop.port;
    d->username = g_steal_pointer(&ac->username);
}

static char *issuer_url(const char *issuer)
{
    return strstr(issuer, "://") ? g_strdup(issuer) : g_strconcat("https://", issuer, NULL);
}

/* An address of this machine: the loopback rule's names, all of 127/8,
 * *.localhost and the unspecified addresses. */
static bool host_is_local(const char *host)
{
    g_autofree char *h = g_ascii_strdown(host, -1);

    return uri_host_is_loopback(h) || g_str_has_suffix(h, ".localhost") ||
           strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 ||
           (g_hostname_is_ip_address(h) &&
            (g_str_has_prefix(h, "127.") || g_str_has_prefix(h, "::ffff:127.")));
}

/* "https://host/path" as the user or a document writes an issuer, without
 * a trailing slash, for comparing. */
static char *issuer_key(const char *issuer)
{
    g_autofree char *url = issuer_url(issuer);
    size_t n = strlen(url);

    while (n > 0 && url[n - 1] == '/')
        url[--n] = '\0';
    return g_steal_pointer(&url);
}

static bool same_origin(GUri *a, GUri *b)
{
    int pa = g_uri_get_port(a), pb = g_uri_get_port(b);
    bool tls = g_ascii_strcasecmp(g_uri_get_scheme(a), "https") == 0;

    if (pa < 0)
        pa = tls ? 443 : 80;
    if (pb < 0)
        pb = g_ascii_strcasecmp(g_uri_get_scheme(b), "https") == 0 ? 443 : 80;
    return g_ascii_strcasecmp(g_uri_get_scheme(a), g_uri_get_scheme(b)) == 0 &&
           g_ascii_strcasecmp(g_uri_get_host(a), g_uri_get_host(b)) == 0 && pa == pb;
}

/* An autoconfig document is anyone's word for where the user signs in: a
 * sign-in on this machine (loopback) or in the clear (http) is taken from
 * it only at the issuer the user named (--issuer, or NULL). */
static int check_named_url(const char *where, const char *what, const char *url,
                           const char *trusted, const char *issuer, struct tokend_error *e)
{
    g_autoptr(GUri) u = g_uri_parse(url, G_URI_FLAGS_NONE, NULL);
    g_autofree char *given = trusted ? issuer_url(trusted) : NULL;
    g_autoptr(GUri) t = given ? g_uri_parse(given, G_URI_FLAGS_NONE, NULL) : NULL;
    g_autofree char *named = issuer_key(issuer);
    bool plain = u && g_ascii_strcasecmp(g_uri_get_scheme(u), "https") != 0;

    if (!u || !g_uri_get_host(u))
        return error_set(e, TOKEND_EX_DATAERR, "%s names an unusable %s %s", where, what, url);
    if (!plain && !host_is_local(g_uri_get_host(u)))
        return 0;
    if (t && g_uri_get_host(t) && same_origin(u, t))
        return 0;
    error_set(e, TOKEND_EX_DATAERR, "%s names the %s %s, %s; refusing to sign in there on its word",
              where, what, url, plain ? "which is not https" : "which is on this machine");
    error_set_hint(e, "if that is really your provider's, pass --issuer %s", named);
    return -1;
}

/* OpenID discovery on the autoconfig's issuer; without it, the endpoints
 * the autoconfig names. */
static int discover(Http *h, Detection *d, Autoconfig *ac, const char *where, const char *trusted,
                    struct tokend_error *e)
{
    g_autofree char *issuer = issuer_url(ac->issuer);
    g_autofree char *base =
        g_str_has_suffix(issuer, "/") ? g_strndup(issuer, strlen(issuer) - 1) : g_strdup(issuer);
    g_autofree char *url = g_strconcat(base, "/.well-known/openid-configuration", NULL);
    g_autoptr(HttpResponse) r = NULL;
    g_autoptr(Discovery) disc = NULL;
    struct tokend_error de = TOKEND_ERROR_INIT;

    if (http_request(h, url, NULL, &r, &de) == 0 && r->status != 200)
        error_set(&de, TOKEND_EX_DATAERR, "cannot read %s (HTTP %ld)", url, r->status);
    else if (r)
        disc = discovery_parse(r->body->data, r->body->len, issuer, &de);
    if (disc) {
        log_verbose("detect: discovery: %s is an OpenID issuer", disc->issuer);
        d->issuer = g_strdup(disc->issuer);
        return 0;
    }
    log_verbose("detect: discovery: %s", de.message);
    if (ac->auth_url && ac->token_url) {
        error_clear(&de);
        if (check_named_url(where, "authURL", ac->auth_url, trusted, ac->issuer, e) < 0 ||
            check_named_url(where, "tokenURL", ac->token_url, trusted, ac->issuer, e) < 0)
            return -1;
        log_verbose("detect: using the endpoints the autoconfig names");
        d->authorize_url = g_strdup(ac->auth_url);
        d->token_url = g_strdup(ac->token_url);
        return 0;
    }
    error_move(e, &de);
    error_prefix(e, "the issuer %s named by autoconfig", issuer);
    return -1;
}

/* The issuer the user passed must be the one found. */
static int check_issuer(const char *where, const char *issuer, const char *trusted,
                        struct tokend_error *e)
{
    g_autofree char *url = issuer_url(issuer);
    g_autofree char *given = trusted ? issuer_key(trusted) : NULL;
    g_autofree char *named = issuer_key(issuer);

    if (given && strcmp(given, named) != 0) {
        error_set(e, TOKEND_EX_DATAERR, "%s names the issuer %s, not %s (--issuer)", where, named,
                  given);
        error_set_hint(e, "pass the issuer the domain names, or add the account by hand "
                          "(tokend.conf(5))");
        return -1;
    }
    return check_named_url(where, "issuer", url, trusted, issuer, e);
}

static const struct provider_preset *provider_of_issuer(const char *host)
{
    const struct provider_preset *p;

    for (size_t i = 0; (p = provider_at(i)) != NULL; i++)
        if (p->issuer_host && host_under(host, p->issuer_host))
            return p;
    return NULL;
}

static Detection *by_autoconfig(Http *h, const char *email, const char *domain, const char *trusted,
                                struct tokend_error *e)
{
    g_autofree char *where = NULL;
    g_autoptr(Autoconfig) ac = fetch_autoconfig(h, email, domain, &where, e);
    g_autofree char *issuer_host = NULL;
    g_autoptr(Detection) d = NULL;
    const struct provider_preset *p;

    if (!ac)
        return NULL;
    if (!ac->issuer) {
        error_set(e, TOKEND_EX_CONFIG, "%s names no OAuth2 sign-in (<oAuth2>) for %s", where,
                  domain);
        return NULL;
    }
    issuer_host = g_strdup(ac->issuer);
    if ((p = provider_of_issuer(issuer_host)) != NULL)
        d = found(p, p->default_tenant, g_strdup_printf("%s names %s", where, p->title));
    else
        d = found(provider_discovering(), NULL,
                  g_strdup_printf("%s names the issuer %s", where, ac->issuer));
    if (d->provider->discovers) {
        if (check_issuer(where, ac->issuer, trusted, e) < 0 ||
            discover(h, d, ac, where, trusted, e) < 0)
            return NULL;
        d->scopes = g_steal_pointer(&ac->scopes);
    }
    take_servers(d, ac);
    return g_steal_pointer(&d);
}

Detection *detect_known(const char *email)
{
    g_autofree char *domain = detect_domain(email);

    return domain ? by_name(domain) : NULL;
}

Detection *detect_provider(const char *email, const char *trusted_issuer, struct tokend_error *e)
{
    g_autofree char *domain = detect_domain(email);
    g_autofree char *names = NULL;
    g_autoptr(Http) h = NULL;
    Detection *d;

    if (!domain) {
        error_set(e, TOKEND_EX_USAGE, "\"%s\" is not an e-mail address", email);
        return NULL;
    }
    if ((d = by_name(domain)) != NULL)
        return d;
    if ((d = by_mx(domain, e)) != NULL || e->status)
        return d;
    h = http_new(NULL);
    http_set_max_bytes(h, AUTOCONFIG_MAX_BYTES);
    if ((d = by_tenant(h, domain)) != NULL)
        return d;
    if ((d = by_autoconfig(h, email, domain, trusted_issuer, e)) != NULL || e->status)
        return d;
    names = provider_names_text();
    error_set(e, TOKEND_EX_CONFIG, "could not detect the provider of %s", domain);
    error_set_hint(e, "add provider = %s by hand (tokend.conf(5)), or pass --provider", names);
    return NULL;
}
