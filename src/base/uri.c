#include <string.h>

#include "tokend/uri.h"

bool uri_host_is_loopback(const char *host)
{
    return g_strcmp0(host, "127.0.0.1") == 0 || g_strcmp0(host, "::1") == 0 ||
           g_strcmp0(host, "[::1]") == 0 || (host && g_ascii_strcasecmp(host, "localhost") == 0);
}

/* Letters, digits and hyphens in dot-separated labels of 1 to 63. */
static bool dns_name_valid(const char *name, guint min_labels)
{
    g_auto(GStrv) labels = NULL;
    guint n = 0;

    if (!name || !*name || strlen(name) > 253)
        return false;
    labels = g_strsplit(name, ".", -1);
    for (char **l = labels; *l; l++, n++) {
        size_t len = strlen(*l);

        if (len == 0 || len > 63 || (*l)[0] == '-' || (*l)[len - 1] == '-')
            return false;
        for (size_t i = 0; i < len; i++)
            if (!g_ascii_isalnum((*l)[i]) && (*l)[i] != '-')
                return false;
    }
    return n >= min_labels;
}

bool uri_has_query(const char *url)
{
    g_autoptr(GUri) u = g_uri_parse(url, G_URI_FLAGS_NONE, NULL);

    return u && g_uri_get_query(u);
}

bool uri_host_valid(const char *host)
{
    return host && (g_hostname_is_ip_address(host) || dns_name_valid(host, 1));
}

bool uri_endpoint_ok(const char *url, const char **why)
{
    g_autoptr(GUri) u = g_uri_parse(url, G_URI_FLAGS_NONE, NULL);
    const char *host = u ? g_uri_get_host(u) : NULL;

    *why = "must be an https:// URL (http:// only for 127.0.0.1, localhost or [::1])";
    if (!host || !*host)
        return false;
    if (g_uri_get_userinfo(u)) {
        *why = "must not hold a user name or password";
        return false;
    }
    if (g_uri_get_port(u) == 0) {
        *why = "names port 0, which is not a port";
        return false;
    }
    if (g_uri_get_fragment(u)) {
        *why = "has a fragment (#...), which no endpoint takes (RFC 6749 3.1)";
        return false;
    }
    if (strcmp(g_uri_get_scheme(u), "https") == 0)
        return true;
    return strcmp(g_uri_get_scheme(u), "http") == 0 && uri_host_is_loopback(host);
}

static bool parse_port(const char *text, int *port)
{
    guint64 n;

    if (!g_ascii_string_to_unsigned(text, 10, 1, 65535, &n, NULL))
        return false;
    *port = (int)n;
    return true;
}

static bool split_bracketed(const char *text, char **host, int *port, const char **why)
{
    const char *close = strchr(text, ']');
    g_autofree char *h = close ? g_strndup(text + 1, (gsize)(close - text - 1)) : NULL;

    *why = "is not an IPv6 address in brackets: [ADDRESS] or [ADDRESS]:PORT";
    if (!h || !strchr(h, ':') || !g_hostname_is_ip_address(h))
        return false;
    if (close[1] != '\0' && (close[1] != ':' || !parse_port(close + 2, port))) {
        *why = "has a port after ]: that is not a number from 1 to 65535";
        return false;
    }
    *host = g_steal_pointer(&h);
    return true;
}

bool uri_split_host_port(const char *text, char **host, int *port, const char **why)
{
    const char *colon = strchr(text, ':');
    g_autofree char *h = NULL;

    *port = 0;
    if (text[0] == '[')
        return split_bracketed(text, host, port, why);
    if (colon && strchr(colon + 1, ':')) {
        /* "::1:993" is an address, or ::1 and a port: brackets say which. */
        *why = "has more than one colon: write an IPv6 address in brackets, [ADDRESS] or "
               "[ADDRESS]:PORT";
        return false;
    }
    h = colon ? g_strndup(text, (gsize)(colon - text)) : g_strdup(text);
    if (!uri_host_valid(h)) {
        *why = "is not a host name or address (HOST or HOST:PORT)";
        return false;
    }
    if (colon && !parse_port(colon + 1, port)) {
        *why = "has a port after : that is not a number from 1 to 65535";
        return false;
    }
    *host = g_steal_pointer(&h);
    return true;
}

static char *join_host_port(const char *host, int port)
{
    bool v6 = strchr(host, ':') != NULL;

    if (port > 0)
        return g_strdup_printf("%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
    return g_strdup_printf("%s%s%s", v6 ? "[" : "", host, v6 ? "]" : "");
}

/* The path of an authority URL: "", "/", "/TENANT" or "/TENANT/". */
static bool authority_path_tenant(const char *path, char **tenant, const char **why)
{
    g_auto(GStrv) parts = g_strsplit(path, "/", -1);
    guint n = g_strv_length(parts);

    *tenant = NULL;
    if (n == 0 || (n == 2 && parts[1][0] == '\0'))
        return true;
    /* parts[0] is "" (the path starts with /); an optional "" after the tenant. */
    if (n > 3 || (n == 3 && parts[2][0] != '\0') || parts[1][0] == '\0') {
        *why = "has a path other than the tenant (write https://HOST/TENANT)";
        return false;
    }
    if (!uri_tenant_valid(parts[1])) {
        *why = "names a tenant that is not common, organizations, consumers, a GUID or "
               "a domain";
        return false;
    }
    *tenant = g_strdup(parts[1]);
    return true;
}

static bool authority_from_url(const char *text, char **authority, char **tenant, const char **why)
{
    g_autoptr(GUri) u = g_uri_parse(text, G_URI_FLAGS_ENCODED_PATH, NULL);
    const char *host = u ? g_uri_get_host(u) : NULL;

    *why = "is not a URL of the form https://HOST[:PORT][/TENANT]";
    if (!host || !*host)
        return false;
    /* GUri removes dot segments ("/x/../common" is "/common"); no tenant
     * has a dot segment or a %-escape, so refuse rather than guess. */
    if (strchr(text, '%') || strstr(text, "/.")) {
        *why = "has a %-escape or a dot segment; write https://HOST/TENANT";
        return false;
    }
    if (strcmp(g_uri_get_scheme(u), "https") != 0) {
        *why = "must be a host or an https:// URL";
        return false;
    }
    if (g_uri_get_userinfo(u) || g_uri_get_query(u) || g_uri_get_fragment(u)) {
        *why = "has a user name, a query (?) or a fragment (#), which have no place in it";
        return false;
    }
    if (g_uri_get_port(u) == 0 || !uri_host_valid(host)) {
        *why = "does not name a valid host and port";
        return false;
    }
    if (!authority_path_tenant(g_uri_get_path(u), tenant, why))
        return false;
    *authority = join_host_port(host, g_uri_get_port(u));
    return true;
}

bool uri_parse_authority(const char *text, char **authority, char **tenant, const char **why)
{
    g_autofree char *host = NULL;
    int port = 0;

    *authority = *tenant = NULL;
    if (strstr(text, "://"))
        return authority_from_url(text, authority, tenant, why);
    if (strpbrk(text, "/?#@")) {
        *why = "must be a host (login.microsoftonline.com) or a URL "
               "(https://login.microsoftonline.com/TENANT)";
        return false;
    }
    if (!uri_split_host_port(text, &host, &port, why))
        return false;
    *authority = join_host_port(host, port);
    return true;
}

static bool guid_valid(const char *s)
{
    static const int groups[] = {8, 4, 4, 4, 12};

    for (size_t g = 0; g < G_N_ELEMENTS(groups); g++) {
        for (int i = 0; i < groups[g]; i++, s++)
            if (!g_ascii_isxdigit(*s))
                return false;
        if (*s != (g + 1 < G_N_ELEMENTS(groups) ? '-' : '\0'))
            return false;
        s++;
    }
    return true;
}

bool uri_tenant_valid(const char *tenant)
{
    static const char *const names[] = {"common", "organizations", "consumers"};

    if (!tenant)
        return false;
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
        if (g_ascii_strcasecmp(tenant, names[i]) == 0)
            return true;
    return guid_valid(tenant) || dns_name_valid(tenant, 2);
}

char *uri_build(const char *scheme, const char *authority, const char *path)
{
    g_autofree char *host = NULL;
    g_autoptr(GUri) u = NULL;
    const char *why;
    int port = 0;

    if (!authority || !uri_split_host_port(authority, &host, &port, &why))
        return NULL;
    u = g_uri_build(G_URI_FLAGS_NONE, scheme, NULL, host, port > 0 ? port : -1, path, NULL, NULL);
    return g_uri_to_string(u);
}
