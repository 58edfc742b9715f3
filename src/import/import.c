/* The parsers of other tools' token files.  Each reads the file the way
 * the tool itself reads it:
 *   fetchmail-oauth2.py: `dict(line.strip().split('=',1) for line in
 *     open(config))`, then `open(refresh_token_file).readline().rstrip()`;
 *   mutt_oauth2.py: `json.loads(gpg --decrypt)`, key "refresh_token";
 *   oama: Aeson's encoding of its AuthRecord, key "refresh_token";
 *   email-oauth2-proxy: configparser sections named after the account,
 *     refresh_token a Fernet token under a PBKDF2 key (import_fernet.c).
 *   pizauth: `pizauth dump`, ChaCha20-Poly1305 under the key built into
 *     pizauth around its Dump struct (import_pizauth.c). */

#include <string.h>
#include <cjson/cJSON.h>

#include "tokend/import.h"

#define TOKEN_MAX 16384

static const char *const format_names[] = {
    [IMPORT_FORMAT_FETCHMAIL_OAUTH2] = "fetchmail-oauth2",
    [IMPORT_FORMAT_MUTT_OAUTH2] = "mutt-oauth2",
    [IMPORT_FORMAT_OAMA] = "oama",
    [IMPORT_FORMAT_PIZAUTH] = "pizauth",
    [IMPORT_FORMAT_EMAIL_OAUTH2_PROXY] = "email-oauth2-proxy",
};

int import_format_from_name(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(format_names); i++)
        if (g_strcmp0(name, format_names[i]) == 0)
            return (int)i;
    return -1;
}

const char *import_format_name(enum import_format f)
{
    return format_names[f];
}

const char *import_format_list(void)
{
    return "fetchmail-oauth2, mutt-oauth2, oama, pizauth, email-oauth2-proxy";
}

void import_found_free(ImportFound *f)
{
    if (!f)
        return;
    secstr_free(f->refresh_token);
    g_free(f->client_id);
    g_free(f);
}

/* RFC 6749 appendix A.17: a refresh token is visible ASCII. */
static bool token_chars_ok(const char *s, size_t len)
{
    if (len == 0 || len > TOKEN_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

static char *strip_dup(const char *s, size_t len)
{
    while (len && g_ascii_isspace(*s))
        s++, len--;
    while (len && g_ascii_isspace(s[len - 1]))
        len--;
    return g_strndup(s, len);
}

/* One line of the config: name=value, split at the first '='. */
static int fetchmail_line(const char *line, size_t len, int lineno, char **rt_file,
                          char **client_id, struct tokend_error *e)
{
    g_autofree char *stripped = strip_dup(line, len);
    size_t slen = strlen(stripped);
    char *eq = strchr(stripped, '=');

    if (!*stripped)
        return 0; /* the script fails on these; tolerate them */
    if (!eq || memchr(line, '\0', len))
        return error_set(e, TOKEND_EX_DATAERR, "line %d is not name=value", lineno);
    *eq = '\0';
    if (strcmp(stripped, "refresh_token_file") == 0) {
        g_free(*rt_file);
        *rt_file = g_strdup(eq + 1);
    } else if (strcmp(stripped, "client_id") == 0) {
        g_free(*client_id);
        *client_id = g_strdup(eq + 1);
    }
    explicit_bzero(stripped, slen);
    return 0;
}

int import_parse_fetchmail_config(const char *text, size_t len, char **rt_file, char **client_id,
                                  struct tokend_error *e)
{
    const char *p = text, *end = text + len;
    int lineno = 0;

    *rt_file = NULL;
    *client_id = NULL;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

        if (fetchmail_line(p, n, ++lineno, rt_file, client_id, e) < 0)
            goto fail;
        p += n + 1;
    }
    if (!*rt_file || !**rt_file) {
        error_set(e, TOKEND_EX_DATAERR, "no refresh_token_file= line");
        goto fail;
    }
    if (*client_id && !**client_id)
        g_clear_pointer(client_id, g_free);
    return 0;
fail:
    g_clear_pointer(rt_file, g_free);
    g_clear_pointer(client_id, g_free);
    return -1;
}

SecStr *import_parse_token_line(const SecStr *text, struct tokend_error *e)
{
    const char *nl = memchr(text->data, '\n', text->len);
    size_t n = nl ? (size_t)(nl - text->data) : text->len;

    while (n && g_ascii_isspace(text->data[n - 1]))
        n--;
    if (n == 0) {
        error_set(e, TOKEND_EX_DATAERR, "the refresh token file is empty");
        return NULL;
    }
    if (!token_chars_ok(text->data, n)) {
        error_set(e, TOKEND_EX_DATAERR, "the refresh token file's first line is not a token");
        return NULL;
    }
    return secstr_from(text->data, n);
}

static void json_wipe(cJSON *node)
{
    for (; node; node = node->next) {
        if (node->valuestring)
            explicit_bzero(node->valuestring, strlen(node->valuestring));
        if (node->string)
            explicit_bzero(node->string, strlen(node->string));
        json_wipe(node->child);
    }
}

SecStr *import_parse_json(const SecStr *json, struct tokend_error *e)
{
    cJSON *root = cJSON_ParseWithLength(json->data, json->len);
    const cJSON *rt =
        cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "refresh_token") : NULL;
    SecStr *out = NULL;

    if (!root)
        error_set(e, TOKEND_EX_DATAERR, "the decrypted file is not JSON");
    else if (!cJSON_IsObject(root))
        error_set(e, TOKEND_EX_DATAERR, "the decrypted file is not a JSON object");
    else if (!rt || !cJSON_IsString(rt) || !*rt->valuestring)
        error_set(e, TOKEND_EX_DATAERR,
                  "the file holds no refresh_token (the other tool "
                  "never finished its sign-in)");
    else if (!token_chars_ok(rt->valuestring, strlen(rt->valuestring)))
        error_set(e, TOKEND_EX_DATAERR, "the file's refresh_token is not a token");
    else
        out = secstr_from(rt->valuestring, strlen(rt->valuestring));
    json_wipe(root);
    cJSON_Delete(root);
    return out;
}
