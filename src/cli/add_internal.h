#pragma once
/* What add.c and add_app.c share. */

#include "tokend/config.h"
#include "tokend/flow.h"

/* The provider's one-time setup of an app (provider.h app_setup) with the
 * ids filled in, or NULL when the provider has nothing to say. */
char *add_app_setup_text(const Account *a, const struct flow_app_facts *f);
/* Print it on stdout, with the ids the account's token tells. */
void add_app_print_setup(const Account *a);
