#include <string.h>

#include "tokend/tokenformat.h"

int tokenformat_from_name(const char *name)
{
    static const char *const names[] = {"raw", "xoauth2", "oauthbearer"};

    for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

static SecStr *base64(const SecStr *in)
{
    char *enc = g_base64_encode((const guchar *)in->data, in->len);
    SecStr *out = secstr_from(enc, strlen(enc));

    secure_free_str(enc);
    return out;
}

SecStr *tokenformat_render(enum token_format f, const SecStr *token, const char *user,
                           const char *host, int port, struct tokend_error *e)
{
    g_autoptr(SecStr) sasl = secstr_new(token->len + 256);

    switch (f) {
    case TOKEN_FORMAT_RAW:
        return secstr_dup(token);
    case TOKEN_FORMAT_XOAUTH2:
        if (!user)
            break;
        secstr_append_str(sasl, "user=");
        secstr_append_str(sasl, user);
        secstr_append_str(sasl, "\001auth=Bearer ");
        secstr_append(sasl, token->data, token->len);
        secstr_append_str(sasl, "\001\001");
        return base64(sasl);
    case TOKEN_FORMAT_OAUTHBEARER:
        if (!user)
            break;
        /* RFC 7628: a ',' or '=' in the user name is escaped in the GS2 header. */
        secstr_append_str(sasl, "n,a=");
        for (const char *p = user; *p; p++)
            secstr_append_str(sasl, *p == ',' ? "=2C" : *p == '=' ? "=3D" : (char[]){*p, 0});
        secstr_append_str(sasl, ",\001");
        if (host) {
            g_autofree char *hp = g_strdup_printf("host=%s\001port=%d\001", host, port);
            secstr_append_str(sasl, hp);
        }
        secstr_append_str(sasl, "auth=Bearer ");
        secstr_append(sasl, token->data, token->len);
        secstr_append_str(sasl, "\001\001");
        return base64(sasl);
    }
    error_set(e, TOKEND_EX_CONFIG, "this format needs the account's username");
    error_set_hint(e, "set username in the account");
    return NULL;
}
