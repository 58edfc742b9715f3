#pragma once
/* Kill points for crash tests.  Builds with -Dfault_injection=true die with
 * SIGKILL at the point named by $TOKEND_FAULT; other builds compile them
 * away.  FAULT_NUMBER(VAR, normal) lets such a build take a limit from $VAR
 * (to drive paths that need a slow disk or a big load); elsewhere it is the
 * normal value. */

#ifdef TOKEND_FAULT_INJECTION
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#define FAULT_POINT(name)                                                                      \
    do {                                                                                       \
        const char *fault_ = getenv("TOKEND_FAULT");                                           \
        if (fault_ && strcmp(fault_, name) == 0)                                               \
            raise(SIGKILL);                                                                    \
    } while (0)
#define FAULT_NUMBER(var, normal) (getenv(var) ? atoi(getenv(var)) : (normal))
#else
#define FAULT_NUMBER(var, normal) (normal)
#define FAULT_POINT(name)                                                                      \
    do {                                                                                       \
    } while (0)
#endif
