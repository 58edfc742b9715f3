/* tokend add --app-only: what an administrator must do once so that the
 * app may use the mailbox.  The words are the provider entry's
 * (provider.h app_setup); this fills in the ids. */

#include <stdio.h>
#include <string.h>

#include "add_internal.h"
#include "tokend/flow.h"

static char *replace_all(const char *text, const char *what, const char *with)
{
    g_auto(GStrv) parts = g_strsplit(text, what, -1);

    return g_strjoinv(with, parts);
}

/* The account's scopes as an administrator types them: comma separated. */
static char *comma_scopes(const char *scopes)
{
    g_auto(GStrv) words = g_strsplit_set(scopes ? scopes : "", " ", -1);
    g_autoptr(GPtrArray) kept = g_ptr_array_new_null_terminated(4, NULL, TRUE);

    for (size_t i = 0; words[i]; i++)
        if (*words[i])
            g_ptr_array_add(kept, words[i]);
    return g_strjoinv(",", (char **)kept->pdata);
}

char *add_app_setup_text(const Account *a, const struct flow_app_facts *f)
{
    g_autofree char *scopes = comma_scopes(a->scopes);
    const char *tenant = f->tenant_id ? f->tenant_id : a->tenant;
    const char *pairs[][2] = {
        {"{client_id}", f->client_id ? f->client_id : "CLIENT_ID"},
        {"{object_id}", f->object_id ? f->object_id : "ENTERPRISE_APP_OBJECT_ID"},
        {"{tenant}", tenant ? tenant : "TENANT_ID"},
        {"{mailbox}", a->subject    ? a->subject
                      : a->username ? a->username
                                    : a->name},
        {"{scopes}", scopes},
        {"{account}", a->name},
    };
    char *text;

    if (!a->provider->app_setup)
        return NULL;
    text = g_strdup(a->provider->app_setup);
    for (size_t i = 0; i < G_N_ELEMENTS(pairs); i++) {
        char *next = replace_all(text, pairs[i][0], pairs[i][1]);
        g_free(text);
        text = next;
    }
    return text;
}

void add_app_print_setup(const Account *a)
{
    struct flow_app_facts f = {0};
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *text = NULL;

    if (flow_app_facts(a, &f, &e) < 0)
        error_clear(&e);
    text = add_app_setup_text(a, &f);
    flow_app_facts_clear(&f);
    if (text)
        printf("%s: %s", a->name, text);
    fflush(stdout);
}
