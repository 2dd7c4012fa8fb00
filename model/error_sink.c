#include "model/error_sink.h"

#include <stdio.h>

int sink_failv(error_sink *sink, const char *prefix, const char *fmt, va_list args) {
    if (sink->err_len == 0) return -1;
    int n = prefix ? snprintf(sink->err, sink->err_len, "%s", prefix) : 0;
    if (n >= 0 && (size_t)n < sink->err_len) vsnprintf(sink->err + n, sink->err_len - (size_t)n, fmt, args);
    return -1;
}

int sink_fail(error_sink *sink, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    sink_failv(sink, NULL, fmt, args);
    va_end(args);
    return -1;
}
