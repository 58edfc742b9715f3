/* Microsoft Graph's sendMail (tokend/graph.h): one request through http.c
 * and its answer as an SMTP reply. */

#include <string.h>

#include "tokend/graph.h"
#include "tokend/http.h"
#include "tokend/log.h"
#include "tokend/redact.h"
#include "tokend/shared.h"

/* Graph's error words in a reply: enough to say what, short enough for
 * one SMTP line (RFC 5321 §4.5.3.1.5: 512 with the code). */
#define WORDS_MAX 300

#define CODE_CHARS G_CSET_A_2_Z G_CSET_a_2_z G_CSET_DIGITS "_."

G_STATIC_ASSERT(GRAPH_MIME_MAX == GRAPH_REQUEST_MAX / 4 * 3);

void graph_answer_clear(struct graph_answer *ans)
{
    g_clear_pointer(&ans->code, g_free);
    g_clear_pointer(&ans->message, g_free);
    g_clear_pointer(&ans->failure, g_free);
    ans->status = 0;
    ans->retry_after = 0;
}

static char *safe_words(const char *text, const SecStr *token)
{
    const char *known[] = {token ? token->data : NULL, NULL};
    g_autofree char *clean = redact_text(text, known);

    return error_one_line(clean, WORDS_MAX);
}

/* {"error": {"code": "...", "message": "..."}}, when the body is that. */
static void read_error(const SecStr *body, const SecStr *token, struct graph_answer *ans)
{
    g_autoptr(cJSON) root = body && body->len ? cJSON_ParseWithLength(body->data, body->len) : NULL;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
    const cJSON *message = cJSON_GetObjectItemCaseSensitive(err, "message");

    /* A code is a word ("ErrorAccessDenied"): kept as it is, where the
     * redaction would take a long one for a token. */
    if (cJSON_IsString(code) && *code->valuestring && strlen(code->valuestring) <= 80 &&
        strspn(code->valuestring, CODE_CHARS) == strlen(code->valuestring) &&
        !(token && strstr(token->data, code->valuestring)))
        ans->code = g_strdup(code->valuestring);
    else if (cJSON_IsString(code))
        ans->code = safe_words(code->valuestring, token);
    if (cJSON_IsString(message))
        ans->message = safe_words(message->valuestring, token);
}

static char *send_mail_url(const char *root, const char *sender)
{
    g_autofree char *user = g_uri_escape_string(sender, "@", FALSE);
    size_t n = strlen(root);

    while (n > 0 && root[n - 1] == '/')
        n--;
    return g_strdup_printf("%.*s/v1.0/users/%s/sendMail", (int)n, root, user);
}

void graph_send_mail(const char *root, const char *ca_file, const char *sender, const SecStr *token,
                     const char *mime, size_t len, int timeout_s, struct graph_answer *ans)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(Http) h = http_new(ca_file);
    g_autoptr(HttpResponse) r = NULL;
    g_autofree char *url = send_mail_url(root, sender);
    g_autofree char *body = g_base64_encode((const guchar *)mime, len);

    graph_answer_clear(ans);
    http_set_timeout(h, timeout_s);
    http_set_max_bytes(h, 64 * 1024);
    log_verbose("graph: sendMail as %s: %zu bytes of MIME, %zu of base64", sender, len,
                strlen(body));
    if (http_post_bearer(h, url, "text/plain", body, strlen(body), token, &r, &e) < 0) {
        ans->failure = g_strdup(e.message ? e.message : "the request failed");
        error_clear(&e);
        return;
    }
    ans->status = r->status;
    ans->retry_after = r->retry_after;
    if (r->status != 202)
        read_error(r->body, token, ans);
}

/* ": CODE: MESSAGE" from Graph's error, or "". */
static char *graph_words(const struct graph_answer *ans)
{
    if (!ans->code && !ans->message)
        return g_strdup("");
    return g_strdup_printf(": %s%s%s", ans->code ? ans->code : "", ans->code ? ": " : "",
                           ans->message ? ans->message : "");
}

static char *busy_reply(const struct graph_answer *ans, const char *account, const char *words)
{
    g_autofree char *wait =
        ans->retry_after > 0
            ? g_strdup_printf("; Graph asks to wait %d seconds (Retry-After)", ans->retry_after)
            : g_strdup("");

    return g_strdup_printf("451 4.4.%d tokend: %s: Microsoft Graph answered %ld%s%s; try again "
                           "later",
                           ans->status == 429 ? 5 : 3, account, ans->status, words, wait);
}

char *graph_smtp_reply(const struct graph_answer *ans, const char *account)
{
    g_autofree char *words = graph_words(ans);

    if (ans->status == 0)
        return g_strdup_printf("451 4.4.1 tokend: %s: Microsoft Graph did not answer: %s; the "
                               "message was not sent",
                               account, ans->failure ? ans->failure : "no answer");
    switch (ans->status) {
    case 202:
        return g_strdup_printf("250 2.0.0 tokend: %s: accepted by Microsoft Graph", account);
    case 400:
        return g_strdup_printf("554 5.6.0 tokend: %s: Microsoft Graph refused the message%s",
                               account, words);
    case 403:
        return g_strdup_printf(
            "550 5.7.1 tokend: %s: Microsoft Graph refused to send as this sender%s; an "
            "administrator must grant the app Mail.Send (delegated for a person's sign-in, "
            "application for app-only) with consent, and the mailbox to the app",
            account, words);
    case 413:
        return g_strdup_printf("552 5.3.4 tokend: %s: Microsoft Graph refused the size: at most "
                               "%d bytes of message%s",
                               account, GRAPH_MIME_MAX, words);
    case 429:
    case 503:
    case 504:
        return busy_reply(ans, account, words);
    default:
        return g_strdup_printf("%s tokend: %s: Microsoft Graph answered %ld%s",
                               ans->status >= 500 ? "451 4.3.0" : "554 5.0.0", account, ans->status,
                               words);
    }
}

char *graph_token_refused(const struct graph_answer *ans, const char *account)
{
    g_autofree char *words = graph_words(ans);

    return g_strdup_printf("454 4.7.0 tokend: %s: Microsoft Graph refused the token after a new "
                           "one was fetched (401%s); check that the token is for Graph "
                           "(tokend.conf(5) smtp_backend)",
                           account, words);
}
