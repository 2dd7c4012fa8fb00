/*
 * A test case run in a forked child, for the tests whose cases are meant to crash or fault
 * (the emulator's loud faults, the sanitizer's planted ones): the parent reads the child's
 * stderr within a time limit, so that a hang fails the case instead of stalling the test.
 */
#ifndef GPT2_CHILD_CASE_H
#define GPT2_CHILD_CASE_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    bool finished;   /* exited, or was ended by a signal, within the time limit */
    int exit_code;   /* when it exited; -1 when a signal ended it */
    int signal;      /* the signal that ended it, else 0 */
    char err[32768]; /* the start of what it wrote on stderr, NUL-terminated */
} child_outcome;

/*
 * Runs body() in a child (its return value is the exit code), with GPT2_EMU_SHAKE_SEED set to
 * shake_seed unless it is NULL; kills it after timeout_seconds. Fills *out.
 */
void child_case_run(child_outcome *out, int (*body)(void), const char *shake_seed,
                    int timeout_seconds);

#ifdef __cplusplus
}
#endif

#endif
