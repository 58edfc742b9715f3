#include "tokend/flow.h"
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

static char *replace_all(const char *text, const char *what, const char *with)
{
    g_auto(GStrv) parts = g_strsplit(text, what, -1);

    return g_strjoinv(with, parts);
}

static char *app_mailbox_hint(const Account *a, const char *mailbox)
{
    struct tokend_error ignored = TOKEND_ERROR_INIT;
    struct flow_app_facts f = {0};
    const char *text = a->provider->app_mailbox_hint
                           ? a->provider->app_mailbox_hint
                           : "the mail administrator must let the app use {mailbox}";
    const char *pairs[][2] = {
        {"{mailbox}", mailbox},
        {"{client_id}", NULL},
        {"{object_id}", NULL},
    };
    char *hint = g_strdup(text);

    if (flow_app_facts(a, &f, &ignored) < 0)
        error_clear(&ignored);
    pairs[1][1] = f.client_id ? f.client_id : "CLIENT_ID";
    pairs[2][1] = f.object_id ? f.object_id : "ENTERPRISE_APP_OBJECT_ID";
    for (size_t i = 0; i < G_N_ELEMENTS(pairs); i++) {
        char *next = replace_all(hint, pairs[i][0], pairs[i][1]);
        g_free(hint);
        hint = next;
    }
    flow_app_facts_clear(&f);
    return hint;
}

void mailcheck_app_refused(const Account *a, enum sasl_result result, struct tokend_error *e)
{
    g_autofree char *hint = NULL;

    if (!config_app_only(a) || !a->username ||
        (result != SASL_RESULT_REFUSED && result != SASL_RESULT_DENIED))
        return;
    hint = app_mailbox_hint(a, a->username);
    error_prefix(e, "the app may not use mailbox %s", a->username);
    error_set_hint(e, "%s", hint);
}

int mailcheck_login(const Account *a, enum mail_service s, const char *host, int port,
                    const SecStr *token, struct tokend_error *e)
{
    const char *user = a->username, *ca_file = a->ca_file;
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
        mailcheck_app_refused(a, result, e);
        return -1;
    }
    log_verbose("%s port %d: %s login as %s accepted", host, port, mail_service_name(s), user);
    mailconn_logout(c);
    return 0;
}
