/* oauth_parse_device_response: the RFC 8628 device authorization answer
 * (see fuzz_response for the layout of an input). */

#include <string.h>

#include "fuzz.h"
#include "tokend/oauth.h"
#include "tokend/tokenrule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(HttpResponse) r = fuzz_response(data, size);
    g_autoptr(DeviceAuth) d = NULL;
    struct tokend_error e = TOKEND_ERROR_INIT;
    int ret;

    if (!r)
        return 0;
    ret = oauth_parse_device_response(r, &d, &e);
    if (ret == 0) {
        /* The URL is shown to the user and polling must stay bounded. */
        if (!d || !d->user_code || !d->verification_uri ||
            http_check_url(d->verification_uri, &e) < 0 ||
            !tokenrule_valid(d->device_code->data, d->device_code->len) || d->interval < 1 ||
            d->interval > 60 || d->expires_in < 1 || d->expires_in > 3600)
            abort();
    } else if (ret != -1 || d || e.status == 0 || !e.message) {
        abort();
    }
    error_clear(&e);
    return 0;
}
