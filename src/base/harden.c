#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "tokend/harden.h"

void harden_process(void)
{
    struct rlimit no_core = {0, 0};

    prctl(PR_SET_DUMPABLE, 0);
    setrlimit(RLIMIT_CORE, &no_core);
    unsetenv("SSLKEYLOGFILE");
}
