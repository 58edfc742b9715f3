/* The key files of app-only accounts: the first byte chooses the parser
 * (0: a service account's JSON key, then its private_key as PEM; 1: a PEM
 * private key; 2: a PEM certificate), the rest is the file. */

#include <string.h>

#include "fuzz.h"
#include "tokend/keyfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(SecStr) text = NULL;

    if (size < 1)
        return 0;
    text = secstr_from((const char *)data + 1, size - 1);
    if (data[0] % 3 == 0) {
        g_autoptr(ServiceAccount) sa = keyfile_parse_service_account(text, &e);
        if (sa && (!sa->client_email || !sa->private_key))
            abort();
        if (sa)
            app_key_free(keyfile_parse_private_key(sa->private_key, NULL, &e));
    } else if (data[0] % 3 == 1) {
        g_autoptr(SecStr) phrase = secstr_from("fuzz", 4);
        app_key_free(keyfile_parse_private_key(text, phrase, &e));
    } else {
        g_autoptr(AppCert) c = keyfile_parse_certificate(text->data, text->len, &e);
        if (c && (!c->x5t_s256 || !c->x5t))
            abort();
    }
    error_clear(&e);
    return 0;
}
