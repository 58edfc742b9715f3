#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "fuzz.h"
#include "tokend/log.h"

/* Index: the first byte's low nibble; digits '0'..'9' are 0..9. */
static const long statuses[16] = {
    200, 201, 400, 401, 403, 429, 500, 503, 302, 404, 204, 299, 100, 0, 502, 999,
};

/* GLib 2.74's GKeyFile sets a GError twice for a value holding an invalid
 * escape and then a backslash at its end ("k = \\x\\"), and warns about
 * itself.  Not tokend's doing: every other warning is. */
static bool known_glib_warning(const char *domain, const char *message)
{
    return g_strcmp0(domain, "GLib") == 0 && message &&
           strstr(message, "GError set over the top of a previous GError") &&
           strstr(message, "Key file contains escape character at end of line");
}

/* Criticals and warnings abort(), so that libFuzzer keeps the input (GLib's
 * own fatal path raises SIGTRAP, which libFuzzer does not catch). */
static GLogWriterOutput log_writer(GLogLevelFlags level, const GLogField *fields, gsize n,
                                   gpointer user)
{
    const char *domain = NULL, *message = NULL;

    for (gsize i = 0; i < n; i++) {
        if (strcmp(fields[i].key, "GLIB_DOMAIN") == 0)
            domain = fields[i].value;
        else if (strcmp(fields[i].key, "MESSAGE") == 0)
            message = fields[i].value;
    }
    if (!(level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)) ||
        known_glib_warning(domain, message))
        return G_LOG_WRITER_HANDLED;
    g_log_writer_standard_streams(level, fields, n, user);
    abort();
}

void fuzz_setup(void)
{
    log_level = LOG_LEVEL_QUIET;
    g_log_set_writer_func(log_writer, NULL, NULL);
    g_setenv("HOME", "/nonexistent/tokend-fuzz", TRUE);
    g_setenv("XDG_CONFIG_HOME", "/nonexistent/tokend-fuzz/config", TRUE);
    g_setenv("XDG_STATE_HOME", "/nonexistent/tokend-fuzz/state", TRUE);
    g_unsetenv("TOKEND_CONFIG");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    return 0;
}

HttpResponse *fuzz_response(const uint8_t *data, size_t size)
{
    HttpResponse *r;
    uint8_t b;

    if (size == 0)
        return NULL;
    b = data[0];
    r = g_new0(HttpResponse, 1);
    r->status = statuses[b & 0x0f];
    /* Digits (0x3N) get application/json and no Retry-After. */
    r->content_type = b & 0x40 ? NULL : g_strdup("application/json; charset=utf-8");
    r->retry_after = b & 0x80 ? 30 : 0;
    r->body = secstr_from((const char *)data + 1, size - 1);
    return r;
}
