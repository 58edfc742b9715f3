#pragma once
/* What add.c and add_app.c share. */

#include "tokend/config.h"
#include "tokend/flow.h"

/* The provider's one-time setup of an app (provider.h app_setup) with the
 * ids filled in, or NULL when the provider has nothing to say. */
char *add_app_setup_text(const Account *a, const struct flow_app_facts *f);
/* Print it on stdout, with the ids the account's token tells. */
void add_app_print_setup(const Account *a);

/* System mode (add_system.c).  Which part of add this process does: all
 * of it (user mode, or the service user run by hand), root's part (ROOT:
 * the file from the command line and the provider table, no network),
 * the service user's detection over the network into a staged file
 * (STAGE), or only the sign-in (SIGNIN: root has written the file).  Read
 * once from what root set, and cleared. */
enum add_phase {
    ADD_PHASE_ALL,
    ADD_PHASE_ROOT,
    ADD_PHASE_STAGE,
    ADD_PHASE_SIGNIN,
};
enum add_phase add_system_phase(void);
/* accounts.d/NAME.conf beside the main file. */
char *add_system_target(const char *config_path, const char *name);
/* -1 (73) when the whole system configuration has the account already. */
int add_system_check_unused(const char *config_path, const char *name, struct tokend_error *e);
/* Root: exec as the service user for NEXT (STAGE or SIGNIN); returns
 * only on failure. */
int add_system_hand_over(enum add_phase next, struct tokend_error *e);
/* The service user: TEXT into STATEDIR/add/NAME.conf, and what to do next. */
int add_system_stage(const char *name, const char *text, struct tokend_error *e);
/* Root: the staged text for NAME (*text NULL when there is none) and its
 * path; -1 when a file is there that the service user did not stage. */
int add_system_staged(const char *name, char **text, char **path, struct tokend_error *e);
/* Root: TEXT, one [account NAME] added for EMAIL, into accounts.d. */
int add_system_install(const char *name, const char *email, const char *text,
                       struct tokend_error *e);
