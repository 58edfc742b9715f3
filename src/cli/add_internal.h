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
 * of it, only up to the account's text handed to root on a pipe (EMIT:
 * root writes the file), or only the sign-in (SIGNIN: root has written
 * it).  Read once from the environment root set, and cleared. */
enum add_phase {
    ADD_PHASE_ALL,
    ADD_PHASE_EMIT,
    ADD_PHASE_SIGNIN,
};
enum add_phase add_system_phase(int *fd);
/* accounts.d/NAME.conf beside the main file. */
char *add_system_target(const char *config_path, const char *name);
/* -1 (73) when the whole system configuration has the account already. */
int add_system_check_unused(const char *config_path, const char *name, struct tokend_error *e);
/* "NAME 1|0\n" (sign in after, or not) and the account's text, to root. */
int add_system_emit(int fd, const char *name, bool signin, const char *group,
                    struct tokend_error *e);
