#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "tokend/pkce.h"

#define VERIFIER_BYTES 48 /* 64 characters once encoded */

char *pkce_base64url(const unsigned char *data, size_t len)
{
    char *s = g_base64_encode(data, len);
    size_t n = strlen(s);

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+')
            s[i] = '-';
        else if (s[i] == '/')
            s[i] = '_';
    }
    while (n > 0 && s[n - 1] == '=')
        s[--n] = '\0';
    return s;
}

static int random_bytes(unsigned char *buf, size_t len, struct tokend_error *e)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = getrandom(buf + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return error_set(e, TOKEND_EX_SOFTWARE, "no random numbers: %s", g_strerror(errno));
        got += (size_t)n;
    }
    return 0;
}

char *pkce_random_string(size_t bytes, struct tokend_error *e)
{
    unsigned char buf[64];
    char *s;

    g_return_val_if_fail(bytes <= sizeof(buf), NULL);
    if (random_bytes(buf, bytes, e) < 0)
        return NULL;
    s = pkce_base64url(buf, bytes);
    explicit_bzero(buf, sizeof(buf));
    return s;
}

char *pkce_challenge(const char *verifier, size_t len)
{
    guint8 digest[32];
    gsize dlen = sizeof(digest);
    GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);

    g_checksum_update(sum, (const guchar *)verifier, (gssize)len);
    g_checksum_get_digest(sum, digest, &dlen);
    g_checksum_free(sum);
    return pkce_base64url(digest, dlen);
}

Pkce *pkce_new(struct tokend_error *e)
{
    g_autoptr(Pkce) p = g_new0(Pkce, 1);
    char *v = pkce_random_string(VERIFIER_BYTES, e);

    if (!v)
        return NULL;
    p->verifier = secstr_from(v, strlen(v));
    secure_free_str(v);
    p->challenge = pkce_challenge(p->verifier->data, p->verifier->len);
    return g_steal_pointer(&p);
}

void pkce_free(Pkce *p)
{
    if (!p)
        return;
    secstr_free(p->verifier);
    g_free(p->challenge);
    g_free(p);
}
