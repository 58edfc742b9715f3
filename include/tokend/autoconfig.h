#pragma once
/* Mozilla autoconfig (the ISPDB format, config-v1.1.xml): the mail servers
 * of a domain and, in <oAuth2>, the authorization server that signs in to
 * them.  Parsed with GMarkup; documents are bounded in size by the caller
 * (the HTTP layer) and here in depth and value length. */

#include <stdbool.h>
#include <glib.h>
#include "tokend/error.h"

#define AUTOCONFIG_MAX_BYTES (256 * 1024)

struct autoconfig_server {
    char *host;
    int port;
    char *socket_type; /* SSL, STARTTLS or plain */
    bool oauth2;       /* lists <authentication>OAuth2</authentication> */
};

typedef struct autoconfig {
    struct autoconfig_server imap, pop, smtp; /* host NULL when not offered */
    char *username;                           /* of the incoming server, placeholders filled in */
    char *issuer;                             /* <oAuth2><issuer>: a host name, or a URL */
    char *scopes;                             /* space separated */
    char *auth_url;
    char *token_url;
} Autoconfig;

/* Parse a document for the address email (which fills the %EMAILADDRESS%,
 * %EMAILLOCALPART% and %EMAILDOMAIN% placeholders).  Anything that is not
 * a well-formed clientConfig with sound values is -1 with DATAERR. */
Autoconfig *autoconfig_parse(const char *xml, size_t len, const char *email,
                             struct tokend_error *e);
void autoconfig_free(Autoconfig *a);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Autoconfig, autoconfig_free)
