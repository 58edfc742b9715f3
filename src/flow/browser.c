#include <glib.h>

#include "tokend/browser.h"
#include "tokend/log.h"
#include "tokend/spawn.h"

static bool in_path(const char *prog)
{
    g_autofree char *found = g_find_program_in_path(prog);
    return found != NULL;
}

/* Not waited for: it may run as long as the user keeps it. */
static bool spawn(const char *prog, const char *url)
{
    const char *argv[] = {prog, url, NULL};
    g_autofree char *what = g_strdup_printf("the browser %s", prog);
    /* The browser must not read our stdin (the user may paste there) nor
     * write into our stdout (scripts may read it). */
    SpawnOptions o = {
        .what = what, .argv = argv, .in = SPAWN_IO_NULL, .out = SPAWN_IO_LOG, .err = SPAWN_IO_LOG};
    struct tokend_error e = TOKEND_ERROR_INIT;

    if (spawn_detached(&o, &e) < 0) {
        log_warn("%s", e.message);
        error_clear(&e);
        return false;
    }
    log_verbose("started %s", prog);
    return true;
}

bool browser_open(const char *url)
{
    const char *browser = g_getenv("BROWSER");

    if (browser && *browser) {
        /* $BROWSER may list alternatives separated by ':'; take the first
         * that starts.  It is a program name, never run through a shell. */
        g_auto(GStrv) progs = g_strsplit(browser, ":", -1);
        for (char **p = progs; *p; p++)
            if (**p && spawn(*p, url))
                return true;
        return false;
    }
    if (in_path("xdg-open"))
        return spawn("xdg-open", url);
    return false;
}
