/* state_parse: an account's state.json.  The input is the file. */

#include <stdlib.h>

#include "fuzz.h"
#include "tokend/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(AccountState) st = state_parse((const char *)data, size, &e);

    if (st) {
        /* The launcher decides from these alone whether a token is fresh:
         * a negative margin would pass an expired token off as fresh. */
        if (e.status != 0 || st->expires_at < 0 || st->last_attempt < 0 || st->min_validity < 0 ||
            st->refresh_margin < 0 || st->last_status < 0)
            abort();
        (void)state_token_fresh(st, 120, 1700000000);
    } else if (e.status == 0 || !e.message) {
        abort();
    }
    error_clear(&e);
    return 0;
}
