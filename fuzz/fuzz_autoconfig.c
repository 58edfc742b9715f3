/* autoconfig_parse: a Mozilla autoconfig (ISPDB) document as a domain's
 * web server sends it.  Whatever it holds, what comes out must be safe to
 * write into the configuration file and to use as endpoints. */

#include <string.h>

#include "fuzz.h"
#include "tokend/autoconfig.h"
#include "tokend/uri.h"

static void check_value(const char *v)
{
    if (!v)
        return;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f || *p == '\\' || *p == '#')
            abort();
}

static void check_server(const struct autoconfig_server *s)
{
    if (s->host && !uri_host_valid(s->host))
        abort();
    if (s->port < 0 || s->port > 65535)
        abort();
    check_value(s->host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(Autoconfig) ac = autoconfig_parse((const char *)data, size, "alice@example.org", &e);

    if (ac) {
        const char *why = NULL;
        if (e.status != 0)
            abort();
        check_server(&ac->imap);
        check_server(&ac->pop);
        check_server(&ac->smtp);
        check_value(ac->username);
        check_value(ac->issuer);
        check_value(ac->scopes);
        if ((ac->auth_url && !uri_endpoint_ok(ac->auth_url, &why)) ||
            (ac->token_url && !uri_endpoint_ok(ac->token_url, &why)))
            abort();
    } else if (e.status != TOKEND_EX_DATAERR || !e.message) {
        abort();
    }
    error_clear(&e);
    return 0;
}
