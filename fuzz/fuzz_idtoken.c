/* idtoken_parse: the id_token of a token response.  The input is the token
 * text (header.payload.signature). */

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tokend/idtoken.h"

/* What status and error messages print: short, printable, one line. */
static bool claim_ok(const char *s)
{
    if (!s)
        return true;
    if (!*s || strlen(s) > 256)
        return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(IdClaims) c = NULL;
    g_autofree char *text = g_strndup((const char *)data, size);
    int ret = idtoken_parse(text, strlen(text), "tokend-native", &c, &e);

    if (ret == 0) {
        if (!c || e.status != 0 || !claim_ok(c->sub) || !claim_ok(c->email) ||
            !claim_ok(c->preferred_username) || !claim_ok(c->upn))
            abort();
        /* Every claim names itself; nothing else is invented. */
        if (idtoken_best_name(c) && !idtoken_match(c, idtoken_best_name(c)))
            abort();
        if (idtoken_match(c, "") ||
            idtoken_has_name(c) != (c->email || c->preferred_username || c->upn))
            abort();
    } else if (ret != -1 || c || e.status != TOKEND_EX_DATAERR || !e.message ||
               strpbrk(e.message, "\r\n")) {
        abort();
    }
    error_clear(&e);
    return 0;
}
