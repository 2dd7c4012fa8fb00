/* One-line error messages written into a caller's buffer, shared by the loaders in model/. */
#ifndef GPT2_ERROR_SINK_H
#define GPT2_ERROR_SINK_H

#include <stdarg.h>
#include <stddef.h>

/* Where a failing function writes its one-line message. */
typedef struct {
    char *err;
    size_t err_len;
} error_sink;

/* Writes prefix (may be NULL) then the formatted message into the sink. Always returns -1. */
int sink_failv(error_sink *sink, const char *prefix, const char *fmt, va_list args);
int sink_fail(error_sink *sink, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
