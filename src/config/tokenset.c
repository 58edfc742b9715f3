#include <string.h>

#include <unistd.h>

#include "tokend/tokenset.h"
#include "tokend/config.h"
#include "tokend/fileio.h"
#include "tokend/paths.h"
#include "tokend/state.h"

#define NAME_MAX_LEN 32
#define SCOPES_MAX_LEN 4096
#define KEY_PREFIX "scopes."

/* RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) */
static bool scope_token_valid(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e || *s == '"' || *s == '\\')
            return false;
    return true;
}

static gint compare_strings(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *tokenset_normalize(const char *const *scopes, const char **why)
{
    g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GString) out = g_string_new(NULL);

    for (const char *const *s = scopes; s && *s; s++) {
        g_auto(GStrv) parts = g_strsplit_set(*s, " \t\n", -1);
        for (char **p = parts; *p; p++) {
            if (!**p)
                continue;
            if (!scope_token_valid(*p)) {
                *why = "a scope has a character that scopes cannot have";
                return NULL;
            }
            g_ptr_array_add(all, g_strdup(*p));
        }
    }
    if (all->len == 0) {
        *why = "no scope given";
        return NULL;
    }
    g_ptr_array_sort(all, compare_strings);
    for (guint i = 0; i < all->len; i++) {
        const char *s = g_ptr_array_index(all, i);
        if (i > 0 && strcmp(s, g_ptr_array_index(all, i - 1)) == 0)
            continue;
        if (out->len)
            g_string_append_c(out, ' ');
        g_string_append(out, s);
    }
    if (out->len > SCOPES_MAX_LEN) {
        *why = "the scopes are too long";
        return NULL;
    }
    return g_string_free(g_steal_pointer(&out), FALSE);
}

char *tokenset_scopes_key(const char *canonical)
{
    g_autofree char *sum = g_compute_checksum_for_string(G_CHECKSUM_SHA256, canonical, -1);

    return g_strdup_printf(KEY_PREFIX "%.16s", sum);
}

bool tokenset_name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!g_ascii_isalnum(name[i]) && name[i] != '_' && name[i] != '-')
            return false;
    return true;
}

/* One "NAME:SCOPE SCOPE..." part. */
static char *parse_set(const char *part, char **why)
{
    const char *colon = strchr(part, ':');
    g_autofree char *name = NULL;
    g_autofree char *scopes = NULL;
    const char *list[] = {colon ? colon + 1 : NULL, NULL};
    const char *reason = NULL;

    if (!colon) {
        *why = g_strdup_printf("\"%s\" is not NAME:SCOPE...", part);
        return NULL;
    }
    name = g_strstrip(g_strndup(part, (gsize)(colon - part)));
    if (!tokenset_name_valid(name)) {
        *why = g_strdup_printf("set name \"%s\" is not 1-32 letters, digits, _ or - "
                               "(write NAME:SCOPE SCOPE...; NAME:SCOPE...)",
                               name);
        return NULL;
    }
    if (!(scopes = tokenset_normalize(list, &reason))) {
        *why = g_strdup_printf("set %s: %s", name, reason);
        return NULL;
    }
    return g_strdup_printf("%s %s", name, scopes);
}

char **tokenset_parse_config(const char *value, char **why)
{
    g_auto(GStrv) parts = g_strsplit(value, ";", -1);
    g_autoptr(GPtrArray) sets = g_ptr_array_new_with_free_func(g_free);

    for (char **p = parts; *p; p++) {
        char *set;
        g_strstrip(*p);
        if (!**p)
            continue;
        if (!(set = parse_set(*p, why)))
            return NULL;
        g_ptr_array_add(sets, set);
        for (guint i = 0; i + 1 < sets->len; i++) {
            const char *other = g_ptr_array_index(sets, i);
            if (strncmp(other, set, strcspn(set, " ") + 1) == 0) {
                *why = g_strdup_printf("set %.*s is given twice", (int)strcspn(set, " "), set);
                return NULL;
            }
        }
    }
    if (sets->len == 0) {
        *why = g_strdup("no set given (NAME:SCOPE...; NAME:SCOPE...)");
        return NULL;
    }
    g_ptr_array_add(sets, NULL);
    return (char **)g_ptr_array_free(g_steal_pointer(&sets), FALSE);
}

const char *tokenset_find(char *const *sets, const char *name)
{
    size_t len = strlen(name);

    for (char *const *s = sets; s && *s; s++)
        if (strncmp(*s, name, len) == 0 && (*s)[len] == ' ')
            return *s + len + 1;
    return NULL;
}

bool tokenset_key_valid(const char *key)
{
    const char *hex = key + strlen(KEY_PREFIX);

    if (!g_str_has_prefix(key, KEY_PREFIX))
        return tokenset_name_valid(key);
    if (strlen(hex) != 16)
        return false;
    for (; *hex; hex++)
        if (!g_ascii_isxdigit(*hex) || g_ascii_isupper(*hex))
            return false;
    return true;
}

char *tokenset_token_file(const char *account_dir, const char *key)
{
    g_autofree char *base = g_strconcat("token.", key, NULL);

    return g_build_filename(account_dir, base, NULL);
}

gint64 tokenset_next_due(const struct account *a, const struct account_state *st)
{
    g_autofree char *dir = NULL;
    gint64 due = G_MAXINT64;

    for (char *const *s = a->token_sets; s && *s; s++) {
        g_autofree char *name = g_strndup(*s, strcspn(*s, " "));
        g_autofree char *path = NULL;
        const StateTokenSet *ts = state_token_set_find(st, name);

        if (!ts || g_strcmp0(ts->scopes, tokenset_find(a->token_sets, name)) != 0 ||
            ts->expires_at == 0)
            return 0;
        if (!dir)
            dir = paths_account_dir(a->name);
        path = tokenset_token_file(dir, name);
        if (access(path, F_OK) < 0)
            return 0;
        due = MIN(due, ts->expires_at - a->refresh_margin);
    }
    return due;
}

int tokenset_forget_files(const char *dir, GString *removed, struct tokend_error *e)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;
    int n = 0;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *path = NULL;
        if (!g_str_has_prefix(name, "token.") || !tokenset_key_valid(name + strlen("token.")))
            continue;
        path = g_build_filename(dir, name, NULL);
        if (fileio_remove(path, e) > 0)
            n++;
    }
    if (n > 0)
        g_string_append_printf(removed, "removed %d token%s of token sets; ", n, n > 1 ? "s" : "");
    return n;
}
