#pragma once
/* The kinds of store, as the configuration's `store` key names them: one
 * table (src/store/store_kind.c) holding each kind's name and what the
 * rest of the program may ask of it.  Pure data, in the light library,
 * shared by the configuration and the stores so that neither includes the
 * other; store.c opens each kind (store_open). */

#include <stdbool.h>

enum store_kind {
    STORE_KIND_AUTO,
    STORE_KIND_SECRET_SERVICE,
    STORE_KIND_FILE,
    STORE_KIND_COMMAND,
    STORE_KIND_COUNT,
};

struct store_kind_info {
    const char *name;
    /* A place a secret can be (auto is a choice among places, not one). */
    bool is_place;
    /* Opened with the account's own commands: only where it is configured. */
    bool needs_account;
    /* Asked quietly unless it is known to hold the secret: it may be
     * missing or locked, and that is no error then (the Secret Service). */
    bool quiet_unless_known;
    /* Where a save goes when this place refuses it (never lose a secret). */
    enum store_kind fallback;
};

const struct store_kind_info *store_kind_info(enum store_kind kind);
/* The name the configuration uses ("auto", "secret-service", ...). */
const char *store_kind_name(enum store_kind kind);
/* By name; -1 if unknown. */
int store_kind_from_name(const char *name);
/* "auto, secret-service, file, command", or only the places. */
char *store_kind_names(bool places_only);
