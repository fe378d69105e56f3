/* SPDX-License-Identifier: MIT */
/*
 * The one rule for names and versions, whatever carries them: a catalog, a hostcaps or a pin
 * document, the probe, or the command line.
 */

#include <stdio.h>

#include "abi/internal.h"

static bool name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '-' || ch == '_' || ch == ':' || ch == '+';
}

/* 1 to max bytes; what (a "name", a "version") says which in the sentence. */
static int check_length(const char *what, const char *s, size_t max, char *why, size_t size)
{
    size_t len = strlen(s);

    if (len == 0) {
        snprintf(why, size, "empty %s", what);
        return -EINVAL;
    }
    if (len > max) {
        snprintf(why, size, "%s \"%.40s...\" is %zu bytes, longer than %zu", what, s, len, max);
        return -EINVAL;
    }
    return 0;
}

int gabi_name_check(const char *name, char *why, size_t size)
{
    if (check_length("name", name, GABI_MAX_NAME, why, size) < 0)
        return -EINVAL;
    for (const char *p = name; *p; p++)
        if (!name_char(*p)) {
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                snprintf(why, size,
                         "name \"%s\" has byte 0x%02x; names use letters, digits and . - _ : +",
                         name, (unsigned char)*p);
            else
                snprintf(why, size,
                         "name \"%s\" has character '%c'; names use letters, digits and . - _ : +",
                         name, *p);
            return -EINVAL;
        }
    return 0;
}

int gabi_version_check(const char *version, char *why, size_t size)
{
    if (check_length("version", version, GABI_MAX_VERSION, why, size) < 0)
        return -EINVAL;
    if (!((*version >= 'a' && *version <= 'z') || (*version >= 'A' && *version <= 'Z') ||
          (*version >= '0' && *version <= '9'))) {
        snprintf(why, size, "version \"%s\" starts with neither a letter nor a digit", version);
        return -EINVAL;
    }
    for (const char *p = version; *p; p++) {
        bool digit = *p >= '0' && *p <= '9';

        if ((!name_char(*p) && *p != '~') || *p == ':') {
            snprintf(why, size,
                     "version \"%s\" has character '%c'; versions use letters, digits and "
                     ". _ + ~ -",
                     version, (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f ? *p : '?');
            return -EINVAL;
        }
        /* A number is written without leading zeros: "5.010" would order before "5.9" under
         * one reading and after it under another, so it is refused instead of guessed. */
        if (digit && *p == '0' && p[1] >= '0' && p[1] <= '9' &&
            (p == version || !(p[-1] >= '0' && p[-1] <= '9'))) {
            snprintf(why, size,
                     "version \"%s\" has a number with a leading zero; write numbers without "
                     "one (\"5.10\", not \"5.010\")",
                     version);
            return -EINVAL;
        }
    }
    return 0;
}
