/* Assertions for the C tests: a failed check prints where and why, and
 * ends the program with status 1 (the Rust harness reports the output). */
#ifndef XEV_TEST_CHECK_H
#define XEV_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

/* Checks that two integers are equal, printing both when they are not. */
#define CHECK_EQ(a, b)                                                           \
    do {                                                                         \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);          \
        if (check_a_ != check_b_) {                                              \
            fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld: %s)\n", \
                    __FILE__, __LINE__, #a, #b, check_a_, check_b_,              \
                    xev_strerror((int)check_a_));                                \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

#define UNUSED(x) ((void)(x))

#endif
