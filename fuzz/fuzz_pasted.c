/* oauth_parse_pasted: what a user pastes after a manual sign-in (the whole
 * final URL, in quotes or brackets, its query, or the bare code), then
 * oauth_check_redirect as the sign-in does.  The input is the pasted text. */

#include <stdlib.h>

#include "fuzz.h"
#include "fuzz_redirect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The text as a line read from the terminal: up to a NUL. */
    g_autofree char *text = g_strndup((const char *)data, size);
    g_autoptr(RedirectParams) p = NULL;
    struct tokend_error e = TOKEND_ERROR_INIT;

    if (oauth_parse_pasted(text, &p, &e) == 0) {
        if (!p || e.status != 0)
            abort();
        fuzz_check_redirect(p);
    } else if (p || e.status == 0 || !e.message) {
        abort();
    }
    error_clear(&e);
    return 0;
}
