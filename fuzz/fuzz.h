#pragma once
/* Shared by the fuzz targets: the libFuzzer entry points and small helpers.
 * Each target feeds one parser with untrusted bytes, the way tokend meets
 * them: server responses, pasted text, files on disk, requests to the
 * redirect catcher. */

#include <stddef.h>
#include <stdint.h>

#include "tokend/http.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Quiet logs, GLib criticals and warnings fatal (a g_return_if_fail that
 * fires is a bug), HOME and the XDG folders pointed away from the user's.
 * Called by LLVMFuzzerInitialize (fuzz_common.c). */
void fuzz_setup(void);

/* An HTTP response built from an input: the first byte chooses the status,
 * the content type and Retry-After (see fuzz_common.c), the rest is the
 * body.  Seed files start with a digit: '0' 200, '1' 201, '2' 400, '3' 401,
 * '4' 403, '5' 429, '6' 500, '7' 503, '8' 302, '9' 404.  NULL when empty. */
HttpResponse *fuzz_response(const uint8_t *data, size_t size);
