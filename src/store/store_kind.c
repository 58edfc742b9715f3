#include <glib.h>

#include "tokend/store_kind.h"

static const struct store_kind_info kinds[STORE_KIND_COUNT] = {
    [STORE_KIND_AUTO] = {.name = "auto", .fallback = STORE_KIND_FILE},
    [STORE_KIND_SECRET_SERVICE] =
        {
            .name = "secret-service",
            .is_place = true,
            .quiet_unless_known = true,
            .fallback = STORE_KIND_FILE,
        },
    [STORE_KIND_FILE] =
        {
            .name = "file",
            .is_place = true,
            .fallback = STORE_KIND_SECRET_SERVICE,
        },
    [STORE_KIND_COMMAND] =
        {
            .name = "command",
            .is_place = true,
            .needs_account = true,
            .fallback = STORE_KIND_FILE,
        },
};

const struct store_kind_info *store_kind_info(enum store_kind kind)
{
    g_return_val_if_fail(kind < STORE_KIND_COUNT, &kinds[STORE_KIND_AUTO]);
    return &kinds[kind];
}

const char *store_kind_name(enum store_kind kind)
{
    return kind < STORE_KIND_COUNT ? kinds[kind].name : "unknown";
}

int store_kind_from_name(const char *name)
{
    for (int k = 0; k < STORE_KIND_COUNT; k++)
        if (g_strcmp0(kinds[k].name, name) == 0)
            return k;
    return -1;
}

char *store_kind_names(bool places_only)
{
    GString *s = g_string_new(NULL);

    for (int k = 0; k < STORE_KIND_COUNT; k++)
        if (!places_only || kinds[k].is_place)
            g_string_append_printf(s, "%s%s", s->len ? ", " : "", kinds[k].name);
    return g_string_free(s, FALSE);
}
