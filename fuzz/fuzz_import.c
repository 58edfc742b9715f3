/* The parsers of `tokend import`: other tools' files, whatever they hold.
 * The first byte picks the parser (fetchmail-oauth2.py's config, a refresh
 * token file's line, mutt_oauth2.py's or oama's JSON, emailproxy.config,
 * a Fernet token), its value mod 5, except 0xf0 and above: pizauth's dump,
 * its decrypted Dump (even) or the sealed file (odd, through the
 * ChaCha20-Poly1305 check: the seed is a real one).  The rest is the file.
 * What comes out is a visible ASCII token, or an error with a message. */

#include <string.h>

#include "fuzz.h"
#include "tokend/import.h"

static void check_token(const SecStr *t, const struct tokend_error *e)
{
    if (!t) {
        if (e->status != TOKEND_EX_DATAERR || !e->message)
            abort();
        return;
    }
    if (t->len == 0 || strlen(t->data) != t->len)
        abort();
    for (size_t i = 0; i < t->len; i++)
        if ((unsigned char)t->data[i] < 0x20 || (unsigned char)t->data[i] > 0x7e)
            abort();
}

static void fuzz_fetchmail(const char *text, size_t len, struct tokend_error *e)
{
    char *rt_file = NULL, *client_id = NULL;
    int r = import_parse_fetchmail_config(text, len, &rt_file, &client_id, e);

    if ((r == 0) != (rt_file != NULL) || (r == 0 && !*rt_file) || (r < 0 && !e->message))
        abort();
    g_free(rt_file);
    g_free(client_id);
}

static void fuzz_proxy(const char *text, size_t len, struct tokend_error *e)
{
    ProxyEntry *p = import_parse_proxy_config(text, len, len % 2 ? "a@example.org" : NULL, e);

    if (p &&
        (!p->section || !p->refresh_token || !*p->refresh_token || !p->salt_len || !p->iterations))
        abort();
    if (!p && (e->status != TOKEND_EX_DATAERR || !e->message))
        abort();
    proxy_entry_free(p);
}

/* The account asked for is "work", or with its name in the input. */
static void fuzz_pizauth(bool sealed, const guint8 *data, size_t len, struct tokend_error *e)
{
    SecStr *plain = sealed ? import_pizauth_open(data, len, e) : NULL;
    char *client_id = NULL;
    SecStr *rt = NULL;

    if (sealed && !plain) {
        if (e->status != TOKEND_EX_DATAERR || !e->message)
            abort();
        return;
    }
    if (plain)
        data = (const guint8 *)plain->data, len = plain->len;
    rt = import_parse_pizauth(data, len, len % 7 ? "work" : "", &client_id, e);
    check_token(rt, e);
    if (!rt && client_id)
        abort();
    secstr_free(rt);
    secstr_free(plain);
    g_free(client_id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const guint8 key[32] = {1, 2, 3};
    struct tokend_error e = TOKEND_ERROR_INIT;
    SecStr *in, *out = NULL;
    char *text;

    if (size < 1)
        return 0;
    if (data[0] >= 0xf0) {
        fuzz_pizauth(data[0] & 1, data + 1, size - 1, &e);
        error_clear(&e);
        return 0;
    }
    text = g_strndup((const char *)data + 1, size - 1);
    in = secstr_from((const char *)data + 1, size - 1);
    switch (data[0] % 5) {
    case 0:
        fuzz_fetchmail((const char *)data + 1, size - 1, &e);
        break;
    case 1:
        check_token(out = import_parse_token_line(in, &e), &e);
        break;
    case 2:
        check_token(out = import_parse_json(in, &e), &e);
        break;
    case 3:
        fuzz_proxy((const char *)data + 1, size - 1, &e);
        break;
    case 4:
        secstr_free(import_fernet_decrypt(text, key));
        break;
    }
    secstr_free(out);
    secstr_free(in);
    g_free(text);
    error_clear(&e);
    return 0;
}
