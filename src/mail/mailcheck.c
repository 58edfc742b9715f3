#include "tokend/log.h"
#include "tokend/mailcheck.h"
#include "tokend/mailconn.h"
#include "tokend/sasl.h"

#define CHECK_TIMEOUT_US (30 * G_USEC_PER_SEC)

const char *mail_service_name(enum mail_service s)
{
    switch (s) {
    case MAIL_SERVICE_IMAP:
        return "IMAP";
    case MAIL_SERVICE_SMTP:
        return "SMTP";
    }
    return "?";
}

int mailcheck_login(enum mail_service s, const char *host, int port, const char *user,
                    const SecStr *token, const char *ca_file, struct tokend_error *e)
{
    struct mail_target t = {
        .proto = s == MAIL_SERVICE_IMAP ? MAIL_PROTO_IMAP : MAIL_PROTO_SMTP,
        .host = host,
        .port = port,
        .tls = MAIL_TLS_AUTO,
        .ca_file = ca_file,
    };
    gint64 deadline = g_get_monotonic_time() + CHECK_TIMEOUT_US;
    g_autoptr(MailConn) c = NULL;
    enum sasl_result result;

    if (!host || !user)
        return error_set(e, TOKEND_EX_CONFIG, "set %s_host and username to check %s",
                         s == MAIL_SERVICE_IMAP ? "imap" : "smtp", mail_service_name(s));
    if (!(c = mailconn_open(&t, deadline, e))) {
        error_prefix(e, "%s check of %s:%d failed", mail_service_name(s), host, port);
        return -1;
    }
    if (sasl_login(c, SASL_MECH_AUTO, user, token, deadline, &result, e) < 0) {
        if (result == SASL_RESULT_REFUSED)
            error_set_hint(e, "check username and scopes, or run: tokend refresh --force");
        return -1;
    }
    log_verbose("%s port %d: %s login as %s accepted", host, port, mail_service_name(s), user);
    mailconn_logout(c);
    return 0;
}
