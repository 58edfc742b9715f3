#pragma once
/* What an account claims on disk besides its secrets, which no other
 * account may share: its token file (two accounts writing one file would
 * hand one account's token to the other's mail server) and its state
 * folder (named after the account, so two configuration files with an
 * account of the same name would share one; the folder records the file
 * it belongs to, and where the folder was then, so that a copy elsewhere
 * claims nothing). */

#include <glib.h>
#include "tokend/error.h"

/* The accounts (Account *) of the configuration file path: refused
 * (TOKEND_EX_CONFIG, naming both accounts) when two of them name the same
 * token file, compared with links and ".." resolved. */
int claim_token_files(const GPtrArray *accounts, const char *path, struct tokend_error *e);
/* The state folder of account is claimed by another configuration file
 * than config_file (both resolved, config_target_path) that still has an
 * [account ACCOUNT]: TOKEND_EX_CONFIG naming both files.  A claim whose
 * file is gone or no longer names the account is no claim. */
int claim_check_folder(const char *config_file, const char *account, struct tokend_error *e);
/* Record in account_dir that it belongs to config_file (under the
 * account's lock; written only when it changes). */
int claim_record_folder(const char *config_file, const char *account_dir, struct tokend_error *e);
/* Give the folder up (logout). */
void claim_release_folder(const char *account_dir);

/* The file in the account's folder that holds the claim. */
#define CLAIM_FILE "config-file"
