/* Minimal assertion helpers shared by the test executables. */
#ifndef GPT2_TEST_CHECK_H
#define GPT2_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int check_failures;

/* Records a failure with its location and keeps going, so one run shows every broken case. */
#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            check_failures++;                                                     \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
        }                                                                         \
    } while (0)

/* Ends a test: prints the count and returns the process exit code. */
static inline int check_finish(const char *test_name) {
    if (check_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", test_name, check_failures);
        return EXIT_FAILURE;
    }
    printf("%s: all checks passed\n", test_name);
    return EXIT_SUCCESS;
}

#define SKIP_EXIT_CODE 77

#endif
