#pragma once
/* Who runs tokend in system mode, and the one change of user: root hands
 * over to the service user (tokend) before anything secret is read.  The
 * service user does the work; every other user is a reader of the token
 * files it may read. */

#include <stdbool.h>
#include "tokend/error.h"

enum sysuser_role {
    SYSUSER_ROLE_ROOT,    /* hands over to the service user */
    SYSUSER_ROLE_SERVICE, /* the service user: every verb */
    SYSUSER_ROLE_READER,  /* any other user: token and tunnel, from the token files */
};

/* The role of this process; -1 (78) when the service user does not exist. */
int sysuser_role(enum sysuser_role *role, struct tokend_error *e);
/* Root only: become the service user (its groups from the group database,
 * its gid, its uid, all three checked) and exec this program again with
 * argv, so that no root process is left.  Returns only on failure: -1. */
int sysuser_become_service(char **argv, struct tokend_error *e);
/* The service user's uid and gid; false when there is no such user. */
bool sysuser_service_ids(uid_t *uid, gid_t *gid);
