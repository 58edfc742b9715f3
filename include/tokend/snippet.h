#pragma once
/* Mail client configurations made from an account: the recipe templates
 * (the .in files of doc/recipes, compiled in) with their @NAME@ placeholders filled. */

#include <glib.h>

#include "tokend/config.h"
#include "tokend/error.h"

/* The client names, space separated ("fetchmail fetchmail7 mutt ..."). */
const char *snippet_client_names(void);
bool snippet_client_known(const char *client);

/* The configuration for client from account a into out.  program is the
 * tokend the client should run (absolute), config the file a was read
 * from (absolute), or NULL in system mode, where the commands say
 * `--system` instead of `-c CONFIG`.  Returns 0, or -1 with e set (78 when the account lacks
 * a value the template needs). */
int snippet_render(const Account *a, const char *client, const char *program, const char *config,
                   GString *out, struct tokend_error *e);
