/* oauth_error_from_response: an OAuth error answer (Microsoft's AADSTS
 * codes, RFC 6749 errors, HTML from a proxy), with the status from the
 * first byte (see fuzz_response). */

#include <string.h>

#include "fuzz.h"
#include "tokend/oauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(HttpResponse) r = fuzz_response(data, size);
    struct tokend_error e = TOKEND_ERROR_INIT;

    if (!r)
        return 0;
    /* Always an error, always one printable line for the user. */
    if (oauth_error_from_response(r, &e) != -1 || e.status == 0 || !e.message ||
        strpbrk(e.message, "\r\n") || (e.hint && strpbrk(e.hint, "\r\n")))
        abort();
    error_clear(&e);
    return 0;
}
