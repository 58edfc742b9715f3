#include <string.h>

#include "tokend/tokenfile.h"
#include "tokend/fileio.h"
#include "tokend/tokenrule.h"

int tokenfile_write(const char *path, const SecStr *token, struct tokend_error *e)
{
    g_autoptr(SecStr) line = NULL;

    if (!token || !tokenrule_valid(token->data, token->len))
        return error_set(e, TOKEND_EX_DATAERR,
                         "the access token is empty or has characters a token cannot have");
    line = secstr_new(token->len + 1);
    secstr_append(line, token->data, token->len);
    secstr_append(line, "\n", 1);
    return fileio_write_atomic(path, line->data, line->len, FILEIO_SYNC_DATA, e);
}

SecStr *tokenfile_read(const char *path, bool *missing, struct tokend_error *e)
{
    g_autoptr(SecStr) s = NULL;

    if (fileio_read_secret(path, TOKENRULE_MAX_BYTES + 1, &s, missing, e) < 0)
        return NULL;
    if (s->len > 0 && s->data[s->len - 1] == '\n')
        s->data[--s->len] = '\0';
    if (!tokenrule_valid(s->data, s->len)) {
        error_set(e, TOKEND_EX_CANTCREAT, "%s does not hold one valid token", path);
        return NULL;
    }
    return g_steal_pointer(&s);
}
