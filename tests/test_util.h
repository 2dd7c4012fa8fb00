/* Small helpers shared by the test executables (link tests/test_util.c). */
#ifndef GPT2_TEST_UTIL_H
#define GPT2_TEST_UTIL_H

#include <stddef.h>

/*
 * The whole file, NUL-terminated (the NUL not counted in *len), or NULL when it cannot be read.
 * The caller frees it.
 */
char *read_whole_file(const char *path, size_t *len);

/*
 * For a test run as `NAME FILE` (file_arg names FILE in the usage line): that file read whole, as
 * read_whole_file does, or NULL after printing the usage or that it cannot be read.
 */
char *read_file_argument(int argc, char **argv, const char *file_arg, size_t *len);

#endif
