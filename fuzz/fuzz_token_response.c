/* oauth_parse_token_response: what the token endpoint answers to a code
 * redemption, a refresh or a device poll (see fuzz_response for the layout
 * of an input). */

#include <string.h>

#include "fuzz.h"
#include "tokend/oauth.h"
#include "tokend/tokenrule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(HttpResponse) r = fuzz_response(data, size);
    g_autoptr(TokenResponse) t = NULL;
    struct tokend_error e = TOKEND_ERROR_INIT;
    int ret;

    if (!r)
        return 0;
    ret = oauth_parse_token_response(r, &t, &e);
    if (ret == 0) {
        /* What the callers rely on: a token that can be written to a token
         * file, a sane lifetime, and no error. */
        if (!t || !tokenrule_valid(t->access_token->data, t->access_token->len) ||
            (t->refresh_token && !tokenrule_valid(t->refresh_token->data, t->refresh_token->len)) ||
            t->expires_in < 1 || e.status != 0)
            abort();
    } else if (ret != -1 || t || e.status == 0 || !e.message || strpbrk(e.message, "\r\n")) {
        abort();
    }
    error_clear(&e);
    return 0;
}
