/* The system broker's protocol (broker.h).  The first byte chooses (its
 * value mod 3): the request parser (what any local user may send the
 * broker), the answer parser (what a reader hears back), or the answer
 * line made from arbitrary words; the rest is the line. */

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tokend/broker.h"
#include "tokend/config.h"

static void request(const char *buf, size_t len)
{
    g_autofree char *account = broker_parse_request(buf, len);
    g_autofree char *line = NULL;

    if (!account)
        return;
    /* Only a valid name, and exactly the line it came in. */
    line = g_strconcat("refresh ", account, "\n", NULL);
    if (!config_account_name_valid(account) || strchr(account, '/') || strlen(line) != len ||
        memcmp(line, buf, len) != 0 || len > BROKER_REQUEST_MAX)
        abort();
}

static void answer(const char *buf, size_t len)
{
    g_autofree char *reason = NULL;
    g_autofree char *again = NULL;
    g_autofree char *line = NULL;
    int status = -1;

    if (broker_parse_answer(buf, len, &status, &reason) < 0)
        return;
    if (status < 0 || status > 255 || strchr(reason, '\n'))
        abort();
    for (const char *p = reason; *p; p++)
        if (!g_ascii_isprint(*p))
            abort();
    line = broker_answer_line(status, reason);
    if (broker_parse_answer(line, strlen(line), &status, &again) < 0 ||
        strncmp(again, reason, BROKER_REASON_MAX) != 0)
        abort();
}

/* Any words make one answer line that parses back. */
static void made(const char *buf, size_t len)
{
    g_autofree char *words = g_strndup(buf, len);
    g_autofree char *line = broker_answer_line(len ? (unsigned char)buf[0] : 0, words);
    g_autofree char *reason = NULL;
    int status;

    if (broker_parse_answer(line, strlen(line), &status, &reason) < 0 ||
        strlen(line) > BROKER_ANSWER_MAX)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data + 1;

    if (size == 0)
        return 0;
    switch (data[0] % 3) {
    case 0:
        request(buf, size - 1);
        break;
    case 1:
        answer(buf, size - 1);
        break;
    default:
        made(buf, size - 1);
        break;
    }
    return 0;
}
