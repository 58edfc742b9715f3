#include "tokend/tokenrule.h"

bool tokenrule_valid(const char *token, size_t len)
{
    if (len == 0 || len > TOKENRULE_MAX_BYTES)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)token[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}
