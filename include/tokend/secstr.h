#pragma once
/* A secret string: tokens, codes, verifiers, client secrets.  The buffer is
 * always NUL-terminated, grows without leaving copies behind, and is wiped
 * when freed.  Never copy its data into ordinary strings that outlive a call. */

#include <stddef.h>
#include <stdbool.h>
#include <glib.h>

typedef struct secstr {
    char *data;
    size_t len;
    size_t cap;
} SecStr;

SecStr *secstr_new(size_t reserve);
SecStr *secstr_from(const char *s, size_t len);
SecStr *secstr_dup(const SecStr *s);
void secstr_append(SecStr *s, const char *data, size_t len);
void secstr_append_str(SecStr *s, const char *str);
/* Append form-urlencoded (application/x-www-form-urlencoded) data. */
void secstr_append_form(SecStr *s, const char *key, const char *value, size_t value_len);
void secstr_free(SecStr *s);
bool secstr_equal(const SecStr *a, const SecStr *b);
/* Wipe and free a plain C string that held a secret. */
void secure_free_str(char *s);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(SecStr, secstr_free)
