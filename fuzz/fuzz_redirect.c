#include <stdlib.h>
#include <string.h>

#include "fuzz_redirect.h"

#define FUZZ_STATE "state123"

static const struct oauth_client clients[] = {
    {.client_id = "cid"},
    {.client_id = "cid", .issuer = "https://accounts.google.com", .iss_required = true},
    {.client_id = "cid", .issuer = "http://127.0.0.1:3000"},
};

void fuzz_check_redirect(const RedirectParams *p)
{
    for (size_t i = 0; i < G_N_ELEMENTS(clients); i++) {
        const struct oauth_client *c = &clients[i];
        struct tokend_error e = TOKEND_ERROR_INIT;
        int r = oauth_check_redirect(p, FUZZ_STATE, c, &e);

        /* An accepted redirect carries a code, our state (unless the user
         * pasted a bare code) and no foreign issuer. */
        if (r == 0 && (!p->code || p->code->len == 0 || p->error ||
                       (!p->bare && g_strcmp0(p->state, FUZZ_STATE) != 0) ||
                       (p->iss && c->issuer && strcmp(p->iss, c->issuer) != 0) ||
                       (!p->bare && c->iss_required && !p->iss) || e.status != 0))
            abort();
        if (r != 0 && (r != -1 || e.status == 0 || !e.message || strpbrk(e.message, "\r\n")))
            abort();
        error_clear(&e);
    }
}
