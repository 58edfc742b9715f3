#include <stdarg.h>
#include <stdio.h>

#include "tokend/log.h"

int log_level = LOG_LEVEL_NORMAL;

static void log_vwrite(const char *prefix, const char *fmt, va_list ap) G_GNUC_PRINTF(2, 0);

static void log_vwrite(const char *prefix, const char *fmt, va_list ap)
{
    g_autofree char *text = g_strdup_vprintf(fmt, ap);
    fprintf(stderr, "tokend: %s%s\n", prefix, text);
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;

    if (level > log_level)
        return;
    va_start(ap, fmt);
    log_vwrite("", fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    va_list ap;

    if (log_level < LOG_LEVEL_NORMAL)
        return;
    va_start(ap, fmt);
    log_vwrite("warning: ", fmt, ap);
    va_end(ap);
}
