#pragma once
/* Which store keeps an account's refresh token, as the configuration's
 * `store` key names it: shared by the configuration and the stores, so
 * that neither includes the other. */

enum store_kind {
    STORE_KIND_AUTO,
    STORE_KIND_SECRET_SERVICE,
    STORE_KIND_FILE,
    STORE_KIND_COMMAND,
};

/* The name the configuration uses ("auto", "secret-service", ...). */
const char *store_kind_name(enum store_kind kind);
