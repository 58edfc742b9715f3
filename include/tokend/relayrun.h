#pragma once
/* Where the relay listens, for `tokend status`: each `tokend relay
 * --listen` process keeps a small file in the runtime folder (its pid, its
 * configuration, the protocol and the addresses), removed when it stops;
 * systemd's socket units (tokend-relay-{smtp,imap,pop3}.socket) are asked
 * of the service manager with `systemctl show`, bounded in time, when one
 * is reachable.  Whether a --listen process still listens is checked, not
 * believed: the process must be alive and its address held by a listening
 * socket of ours (peercred.h).
 *
 * The runtime folder: system mode /run/tokend/relay; otherwise
 * $XDG_RUNTIME_DIR/tokend/relay, else /run/user/UID/tokend/relay (either
 * only when the folder exists and is ours), else STATE/.relay (no account
 * name starts with a dot). */

#include <stdbool.h>
#include <glib.h>

#include "tokend/error.h"

typedef struct relay_listener {
    char *protocol; /* smtp, imap, pop3 */
    char *address;  /* ADDR:PORT */
    char *via;      /* "tokend relay --listen" or the socket unit's name */
    int pid;        /* --listen: its process; 0 for a socket unit */
    bool active;    /* taking connections now */
    char *state;    /* "listening", "process 123 is gone", "inactive (dead)", ... */
} RelayListener;

void relay_listener_free(RelayListener *l);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RelayListener, relay_listener_free)

/* The runtime file of this process's `relay --listen` on addrs for proto
 * ("smtp", ...), serving config_path; its path (for relayrun_remove), or
 * NULL and e. */
char *relayrun_register(const char *proto, char *const *addrs, const char *config_path,
                        struct tokend_error *e);
void relayrun_remove(const char *path);

/* Every relay listener known: the --listen processes that serve
 * config_path, then the socket units the service manager has loaded.
 * Never fails: what cannot be read is left out (said with -v). */
GPtrArray *relayrun_listeners(const char *config_path);

/* The units in `systemctl show -p Id,LoadState,ActiveState,SubState,Listen`
 * output (blocks separated by empty lines), loaded ones only, added to
 * list (pure; unit-tested). */
void relayrun_parse_units(const char *show, GPtrArray *list);
