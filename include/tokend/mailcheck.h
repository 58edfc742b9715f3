#pragma once
/* `tokend check`: log in to the account's IMAP or SMTP server for real with
 * a bearer token (OAUTHBEARER when the server offers it, else XOAUTH2), by
 * the same session and SASL engine as the tunnel (mailconn.c, sasl.c),
 * and report what the server said. */

#include "tokend/config.h"
#include "tokend/error.h"
#include "tokend/sasl.h"
#include "tokend/secstr.h"

enum mail_service {
    MAIL_SERVICE_IMAP,
    MAIL_SERVICE_SMTP,
};

/* Plain connections are refused except to loopback: implicit TLS on 993 and
 * 465, STARTTLS required on other ports. */
int mailcheck_login(const Account *a, enum mail_service service, const char *host, int port,
                    const SecStr *token, struct tokend_error *e);
/* An app-only account's login refused (result SASL_RESULT_REFUSED or
 * _DENIED, after a fresh token): the app may not use the mailbox.  e is
 * said that way, with what the administrator must do (provider.h
 * app_mailbox_hint); any other failure or account is left as it is. */
void mailcheck_app_refused(const Account *a, enum sasl_result result, struct tokend_error *e);
const char *mail_service_name(enum mail_service s);
