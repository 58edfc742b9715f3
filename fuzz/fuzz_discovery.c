/* discovery_parse: OpenID Connect / RFC 8414 server metadata.  The first
 * byte chooses the issuer the metadata is checked against ('0' Microsoft's
 * common tenant, '1' Google, '2' a loopback test server, '3' a tenant), the
 * rest is the document. */

#include <string.h>

#include "fuzz.h"
#include "tokend/discovery.h"

static const char *const issuers[4] = {
    "https://login.microsoftonline.com/common/v2.0",
    "https://accounts.google.com",
    "https://127.0.0.1:8443",
    "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0/",
};

static void check_endpoint(const char *url)
{
    struct tokend_error e = TOKEND_ERROR_INIT;

    /* tokend sends secrets to these: https, or http to loopback only. */
    if (url && http_check_url(url, &e) < 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(Discovery) d = NULL;
    struct tokend_error e = TOKEND_ERROR_INIT;

    if (size == 0)
        return 0;
    d = discovery_parse((const char *)data + 1, size - 1, issuers[data[0] & 3], &e);
    if (d) {
        if (!d->issuer || e.status != 0)
            abort();
        check_endpoint(d->authorization_endpoint);
        check_endpoint(d->token_endpoint);
        check_endpoint(d->device_authorization_endpoint);
        check_endpoint(d->revocation_endpoint);
    } else if (e.status == 0 || !e.message) {
        abort();
    }
    error_clear(&e);
    return 0;
}
