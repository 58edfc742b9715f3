/* config_parse: the configuration file.  The input is the file. */

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tokend/config.h"

static void check_account(const Config *cfg, const Account *a)
{
    /* What the rest of tokend takes for granted of a parsed account. */
    if (!config_account_name_valid(a->name) || config_find(cfg, a->name) != a || !a->client_id ||
        !a->token_file || !g_path_is_absolute(a->token_file) || !a->provider ||
        a->login_timeout < 1 || a->refresh_margin < 0 || a->min_validity < 0)
        abort();
    (void)store_kind_name(a->store);
    (void)flow_kind_name(a->flow);
    for (char **p = a->auth_params; p && *p; p++)
        if (!strchr(*p, '='))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(Config) cfg =
        config_parse((const char *)data, size, "/nonexistent/tokend-fuzz/config", &e);

    if (cfg) {
        if (e.status != 0 || cfg->max_parallel < 1)
            abort();
        for (guint i = 0; i < cfg->accounts->len; i++)
            check_account(cfg, g_ptr_array_index(cfg->accounts, i));
    } else if (e.status != TOKEND_EX_CONFIG || !e.message || strpbrk(e.message, "\r\n")) {
        abort();
    }
    error_clear(&e);
    return 0;
}
