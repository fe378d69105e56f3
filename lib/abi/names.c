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

int gabi_name_check(const char *name, char *why, size_t size)
{
    size_t len = strlen(name);

    if (len == 0) {
        snprintf(why, size, "empty name");
        return -EINVAL;
    }
    if (len > GABI_MAX_NAME) {
        snprintf(why, size, "name \"%.40s...\" is %zu bytes, longer than %u", name, len,
                 GABI_MAX_NAME);
        return -EINVAL;
    }
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
    size_t len = strlen(version);

    if (len == 0) {
        snprintf(why, size, "empty version");
        return -EINVAL;
    }
    if (len > GABI_MAX_VERSION) {
        snprintf(why, size, "version \"%.20s...\" is %zu bytes, longer than %u", version, len,
                 GABI_MAX_VERSION);
        return -EINVAL;
    }
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
