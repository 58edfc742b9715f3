#pragma once
/* Where tokend keeps its files: XDG base directories, or in system mode
 * (tokend --system) /etc/tokend, /var/lib/tokend and /run/tokend, moved by
 * TOKEND_SYSCONFDIR, TOKEND_STATEDIR and TOKEND_RUNTIMEDIR. */

#include <stdbool.h>
#include "tokend/error.h"

/* System mode: set once by main before any path is asked for. */
void paths_set_system(bool on);
bool paths_system(void);
/* /etc/tokend ($TOKEND_SYSCONFDIR), /run/tokend
 * ($TOKEND_RUNTIMEDIR), and the user the system service runs as
 * ($TOKEND_SYSTEM_USER, else tokend). */
char *paths_sysconf_dir(void);
char *paths_runtime_dir(void);
const char *paths_system_user(void);
/* The config file: explicit path, else (system mode) /etc/tokend/config,
 * else $TOKEND_CONFIG, else $XDG_CONFIG_HOME/tokend/config
 * (~/.config/tokend/config). */
char *paths_config_file(const char *explicit_path);
/* $XDG_STATE_HOME/tokend (~/.local/state/tokend); system mode:
 * /var/lib/tokend. */
char *paths_state_dir(void);
/* The user's runtime folder ($XDG_RUNTIME_DIR, else /run/user/UID) when
 * it is a folder of ours, as the login manager makes it: a tmpfs, emptied
 * at logout and reboot.  NULL when there is none (cron, su). */
char *paths_user_runtime_dir(void);
/* Where what tokend can make again at any time is kept (an app's shared
 * token): system mode /run/tokend, else paths_user_runtime_dir()/tokend,
 * else the state folder.  In memory where there is one: its files need
 * no journal and no write-back. */
char *paths_cache_dir(void);
/* The state folder of one account. */
char *paths_account_dir(const char *account);
/* Make the folder and its missing parents; the final folder gets 0700 and
 * must belong to us.  A group- or world-accessible folder of ours is repaired
 * with a warning; one owned by someone else is refused. */
int paths_ensure_private_dir(const char *path, struct tokend_error *e);
/* Every folder above path (up to /) can be changed only by us or root:
 * owned by us or root, not writable by others unless sticky, by the group
 * only when it is ours.  Otherwise 73: whoever can change a parent can swap
 * the folder, and plant a state whose token_file is any file of ours. */
int paths_check_parents(const char *path, struct tokend_error *e);
/* For commands that only read or forget: 0 when the folder exists and is
 * trustworthy (parents too; a loose mode of ours is repaired as above),
 * 1 when it does not exist, -1 with e set when it must not be trusted. */
int paths_trust_private_dir(const char *path, struct tokend_error *e);
/* The same checks as paths_trust_private_dir, without repairs or messages:
 * true when the folder is there, ours, private, under safe parents (the
 * launcher's test before it believes a state.json; whoever can change the
 * folder could plant one whose token_file is any file of ours). */
bool paths_is_private_dir(const char *path);
/* Expand a leading "~/" and make relative paths relative to base. */
char *paths_expand(const char *path, const char *base_dir);
