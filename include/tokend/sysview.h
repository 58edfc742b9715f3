#pragma once
/* What a reader of a system account may know of it without the
 * configuration (which may hold client secrets) or the state folder
 * (closed to it): the runtime folder's ACCOUNT.info, written beside each
 * new token with the token file's group and mode.  JSON: token_file,
 * token_file_mode, expires_at, username, the IMAP and POP3 servers,
 * ca_file, tunnel_mech, tunnel_tls, min_validity.  Never a secret. */

#include <glib.h>
#include "tokend/config.h"
#include "tokend/error.h"
#include "tokend/secstr.h"

/* After the token file: a reader that sees this expiry finds that token. */
int sysview_write(const Account *a, gint64 expires_at, struct tokend_error *e);
/* The reader's account (the fields above only), and the token's expiry;
 * NULL with e set (77 when this user may not read it). */
Account *sysview_read(const char *name, gint64 *expires_at, struct tokend_error *e);
void sysview_account_free(Account *a);
/* The accounts with a view in the runtime folder, sorted (names only:
 * whether this user may read them is sysview_read's to say). */
char **sysview_names(void);
/* The reader's token, valid for min_validity more seconds: read as it is
 * when fresh, else after the system broker refreshed it (broker.h; the
 * view and *expires_at are read again); 75 when the broker could not. */
SecStr *sysview_token(Account *view, gint64 *expires_at, struct tokend_error *e);
