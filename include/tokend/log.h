#pragma once
/* Logging to stderr.  Nothing secret is ever passed to these functions. */

#include <glib.h>

enum log_level {
    LOG_LEVEL_QUIET = -1,
    LOG_LEVEL_NORMAL = 0,
    LOG_LEVEL_VERBOSE = 1, /* -v */
    LOG_LEVEL_DEBUG = 2,   /* -vv */
};

/* The one mutable global: set once from the command line. */
extern int log_level;

void log_msg(int level, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
#define log_info(...) log_msg(LOG_LEVEL_NORMAL, __VA_ARGS__)
#define log_verbose(...) log_msg(LOG_LEVEL_VERBOSE, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
void log_warn(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
