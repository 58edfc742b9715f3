/* The relay's SMTP extensions towards upstream: what it offers once
 * logged in (asked again: the login voids what was said before it,
 * RFC 4954 §4), and BDAT chunks (RFC 3030) streamed through the client
 * buffer, so that memory stays the same whatever the chunk's size. */

#include <inttypes.h>
#include <string.h>

#include "relay_internal.h"
#include "tokend/log.h"
#include "tokend/smtpext.h"

/* Upstream's answer after the last chunk (RFC 5321 §4.5.3.2.6). */
#define LAST_CHUNK_TIMEOUT_US (600 * G_USEC_PER_SEC)

unsigned relay_smtp_offered(MailConn *up, int timeout_s)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    const GPtrArray *caps =
        mailconn_capabilities(up, g_get_monotonic_time() + (gint64)timeout_s * G_USEC_PER_SEC, &e);
    unsigned exts;

    if (!caps) {
        log_verbose("relay: upstream's extensions unknown: %s", e.message);
        error_clear(&e);
        return 0;
    }
    exts = smtpext_from_keywords((const char *const *)caps->pdata, caps->len);
    log_debug("relay: upstream offers extensions 0x%x", exts);
    return exts;
}

int relay_smtp_bdat(MailConn *up, RelayIO *io, guint64 size, bool last, MailReply *r,
                    struct tokend_error *e)
{
    g_autofree char *cmd =
        g_strdup_printf("BDAT %" G_GUINT64_FORMAT "%s\r\n", size, last ? " LAST" : "");
    gint64 wait = last ? LAST_CHUNK_TIMEOUT_US : (gint64)io->timeout_s * G_USEC_PER_SEC;

    log_debug("relay: U: BDAT %" G_GUINT64_FORMAT "%s", size, last ? " LAST" : "");
    if (mailconn_write(up, cmd, strlen(cmd), g_get_monotonic_time() + wait, e) < 0 ||
        relay_io_copy(io, up, size, e) < 0)
        return -1;
    return mailconn_read(up, r, g_get_monotonic_time() + wait, e);
}
