#pragma once
/* When the next `tokend refresh` of a whole configuration has work to do:
 * one small file per configuration, so that a timer tick with nothing due
 * reads one file instead of every account's state.  Written by the engine
 * after each full refresh; forgotten by obtain and logout.  Being early is
 * harmless (the engine then decides); it is never late, because tokens
 * only get later expiries except through obtain and logout. */

#include <glib.h>
#include "tokend/error.h"

/* The due time (unix seconds) recorded for this configuration, or -1 when
 * none is recorded for this identity of the file. */
gint64 schedule_read(const char *config_path, const char *config_id);
int schedule_write(const char *config_path, const char *config_id, gint64 due,
                   struct tokend_error *e);
/* Forget every configuration's schedule. */
void schedule_forget(void);
