/* oauth_parse_query: a raw redirect query string (name=value&...), then
 * oauth_check_redirect as the sign-in does.  The input is the query. */

#include <stdlib.h>

#include "fuzz.h"
#include "fuzz_redirect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *query = g_strndup((const char *)data, size);
    g_autoptr(RedirectParams) p = NULL;
    struct tokend_error e = TOKEND_ERROR_INIT;

    if (oauth_parse_query(query, &p, &e) == 0) {
        if (!p || e.status != 0 || p->bare)
            abort();
        fuzz_check_redirect(p);
    } else if (p || e.status == 0 || !e.message) {
        abort();
    }
    error_clear(&e);
    return 0;
}
