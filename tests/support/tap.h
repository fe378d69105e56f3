/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A tiny TAP producer for unit tests: TEST(name) { ... } registers a case; CHECK* record a
 * failure with file:line and go on; REQUIRE* stop the case; SKIP_CASE(reason...) ends a case
 * that cannot check anything here as "ok N - name # SKIP reason" (tools/check.sh counts it as
 * skipped, never as passed). main() comes from TAP_MAIN().
 */

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tap_case {
    const char *name;
    void (*fn)(void);
};

extern struct tap_case tap_cases[];
extern size_t tap_n_cases;
extern int tap_failed;
extern char tap_skip_reason[256];

#define TAP_MAX_CASES 256

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void register_##name(void)                                 \
    {                                                                                              \
        if (tap_n_cases < TAP_MAX_CASES)                                                           \
            tap_cases[tap_n_cases++] = (struct tap_case){#name, test_##name};                      \
    }                                                                                              \
    static void test_##name(void)

#define TAP_FAIL(...)                                                                              \
    do {                                                                                           \
        printf("#   %s:%d: ", __FILE__, __LINE__);                                                 \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
        tap_failed = 1;                                                                            \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            TAP_FAIL("CHECK(%s) failed", #cond);                                                   \
    } while (0)

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            TAP_FAIL("REQUIRE(%s) failed", #cond);                                                 \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define SKIP_CASE(...)                                                                             \
    do {                                                                                           \
        snprintf(tap_skip_reason, sizeof(tap_skip_reason), __VA_ARGS__);                           \
        return;                                                                                    \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long _a = (long long)(a), _b = (long long)(b);                                        \
        if (_a != _b)                                                                              \
            TAP_FAIL("%s == %lld, expected %s == %lld", #a, _a, #b, _b);                           \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *_a = (a), *_b = (b);                                                           \
        if (!_a || !_b || strcmp(_a, _b) != 0)                                                     \
            TAP_FAIL("%s is \"%s\", expected \"%s\"", #a, _a ? _a : "(null)", _b ? _b : "(null)"); \
    } while (0)

#define CHECK_CONTAINS(hay, needle)                                                                \
    do {                                                                                           \
        const char *_h = (hay), *_n = (needle);                                                    \
        if (!_h || !strstr(_h, _n))                                                                \
            TAP_FAIL("%s (\"%s\") does not contain \"%s\"", #hay, _h ? _h : "(null)", _n);         \
    } while (0)

#define TAP_MAIN()                                                                                 \
    struct tap_case tap_cases[TAP_MAX_CASES];                                                      \
    size_t tap_n_cases;                                                                            \
    int tap_failed;                                                                                \
    char tap_skip_reason[256];                                                                     \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        int any = 0;                                                                               \
        setvbuf(stdout, NULL, _IOLBF, 0);                                                          \
        printf("1..%zu\n", tap_n_cases);                                                           \
        for (size_t i = 0; i < tap_n_cases; i++) {                                                 \
            tap_failed = 0;                                                                        \
            tap_skip_reason[0] = '\0';                                                             \
            if (argc > 1 && !strstr(tap_cases[i].name, argv[1])) {                                 \
                printf("ok %zu - %s # SKIP filtered\n", i + 1, tap_cases[i].name);                 \
                continue;                                                                          \
            }                                                                                      \
            tap_cases[i].fn();                                                                     \
            if (tap_skip_reason[0] && !tap_failed)                                                 \
                printf("ok %zu - %s # SKIP %s\n", i + 1, tap_cases[i].name, tap_skip_reason);      \
            else                                                                                   \
                printf("%s %zu - %s\n", tap_failed ? "not ok" : "ok", i + 1, tap_cases[i].name);   \
            any |= tap_failed;                                                                     \
        }                                                                                          \
        return any;                                                                                \
    }
