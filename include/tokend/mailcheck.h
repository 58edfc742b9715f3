#pragma once
/* `tokend check`: log in to the account's IMAP or SMTP server for real with
 * a bearer token (OAUTHBEARER when the server offers it, else XOAUTH2), by
 * the same session and SASL engine as the tunnel (mailconn.c, sasl.c),
 * and report what the server said. */

#include "tokend/error.h"
#include "tokend/secstr.h"

enum mail_service {
    MAIL_SERVICE_IMAP,
    MAIL_SERVICE_SMTP,
};

/* Plain connections are refused except to loopback: implicit TLS on 993 and
 * 465, STARTTLS required on other ports. */
int mailcheck_login(enum mail_service service, const char *host, int port, const char *user,
                    const SecStr *token, const char *ca_file, struct tokend_error *e);
const char *mail_service_name(enum mail_service s);
