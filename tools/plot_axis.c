/* Axes of the plot library: mapping data to pixels, choosing ticks, and formatting numbers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/plot_internal.h"

/* Values beyond these are not drawn, so that every span and step stays finite. */
#define MAX_MAGNITUDE 1e300
#define MIN_LOG_VALUE 1e-300
/* Least room between neighbouring tick labels, in pixels. */
#define LABEL_GAP_X 14.0
#define LABEL_GAP_Y 10.0
/* Least distance between labelled ticks, so that an axis is not crowded. */
#define MIN_TICK_SPACING_X 60.0
#define MIN_TICK_SPACING_Y 40.0
/* Least pixels per decade for drawing minor ticks at 2..9. */
#define MIN_DECADE_FOR_MINOR 40.0
/* Least pixels per decade for a tick at every decade when only some are labelled. */
#define MIN_DECADE_FOR_TICK 6.0

bool plot_axis_accepts(bool log, double value) {
    return isfinite(value) && fabs(value) <= MAX_MAGNITUDE && (!log || value >= MIN_LOG_VALUE);
}

double plot_axis_map(const plot_axis *axis, double value) {
    double lo = axis->lo, hi = axis->hi;
    if (axis->log) value = log10(value), lo = log10(lo), hi = log10(hi);
    return axis->pixel_lo + (value - lo) / (hi - lo) * (axis->pixel_hi - axis->pixel_lo);
}

void plot_axis_fit(plot_axis *axis, double lo, double hi, bool log, double pad) {
    axis->log = log;
    if (isnan(lo) || isnan(hi)) {
        axis->lo = log ? 1 : 0, axis->hi = log ? 10 : 1;
        return;
    }
    if (log) lo = log10(lo), hi = log10(hi);
    double span = hi - lo;
    if (span <= 1e-9 * fmax(fabs(lo), fabs(hi)) || span <= 0) {
        /* One value: half a decade either side on a log axis, half its size on a linear one. */
        double half = log ? 0.5 : lo == 0 ? 1 : fabs(lo) / 2;
        lo -= half, hi += half, span = hi - lo;
    }
    lo -= pad * span, hi += pad * span;
    /* Within doubles, padding included, so that mapping a value never divides by an infinite
     * span or takes the log of 0 (found by tests/fuzz/fuzz_plot.c). */
    const double limit = log ? 300 : 1e300;
    lo = fmin(fmax(lo, -limit), limit), hi = fmin(fmax(hi, -limit), limit);
    if (!(hi > lo)) hi = lo + (log ? 1 : 1e-300 + fabs(lo) * 1e-9);
    axis->lo = log ? pow(10, lo) : lo;
    axis->hi = log ? pow(10, hi) : hi;
}

/* ---- number formatting ---- */

static double round_significant(double value, int significant) {
    if (value == 0 || !isfinite(value)) return value;
    double factor = pow(10, significant - 1 - floor(log10(fabs(value))));
    return round(value * factor) / factor;
}

/* Fewest decimals (0..6) that write step exactly. */
static int decimals_for(double step) {
    for (int d = 0; d < 6; d++) {
        double scaled = step * pow(10, d);
        if (fabs(scaled - round(scaled)) <= 1e-6 * scaled) return d;
    }
    return 6;
}

/* Prints value with the given decimals (trailing zeros dropped when trim) and the suffix. */
static void print_number(double value, int decimals, bool trim, const char *suffix, char *buf,
                         size_t buf_len) {
    char number[64];
    snprintf(number, sizeof number, "%.*f", decimals, value);
    if (number[0] == '-' && strspn(number + 1, "0.") == strlen(number + 1))
        memmove(number, number + 1, strlen(number)); /* no "-0.00" */
    if (trim && strchr(number, '.')) {
        char *end = number + strlen(number) - 1;
        while (*end == '0') *end-- = '\0';
        if (*end == '.') *end = '\0';
    }
    snprintf(buf, buf_len, "%s%s", number, suffix);
}

static const char *const si_prefixes = "kMGTP"; /* 1e3 .. 1e15 */

/* The SI prefix for a magnitude in [1e3, 1e18): index into si_prefixes; -1 below. */
static int si_index(double magnitude) {
    if (magnitude < 1e3) return -1;
    int index = (int)floor(log10(magnitude) / 3 + 1e-9) - 1;
    return index > 4 ? 4 : index;
}

/* value as mantissa e exponent, the exponent that of scale: 2.5e-4, 0.5e-2 beside 1.0e-2. */
static void format_exponent(double value, double step, double scale, bool trim, char *buf,
                            size_t buf_len) {
    int exponent = (int)floor(log10(scale) + 1e-9);
    int decimals = exponent - (int)floor(log10(step) + 1e-9);
    decimals = decimals < 0 ? 0 : decimals > 3 ? 3 : decimals;
    double mantissa = value / pow(10, exponent);
    if (fabs(round(mantissa * pow(10, decimals))) >= 10 * pow(10, decimals))
        mantissa /= 10, exponent++; /* 9.99e-3 rounded up */
    char suffix[16];
    snprintf(suffix, sizeof suffix, "e%d", exponent);
    print_number(mantissa, decimals, trim, suffix, buf, buf_len);
}

/*
 * value to the precision of step. scale, the largest magnitude among the numbers shown together,
 * chooses exponents (below 0.01 and from 1e18) or plain numbers with SI prefixes from 1e3.
 */
static void format_number(double value, double step, double scale, bool trim, char *buf,
                          size_t buf_len) {
    double magnitude = fabs(value);
    step = fabs(step) > 0 ? fabs(step) : magnitude > 0 ? magnitude : 1;
    scale = fmax(fabs(scale), magnitude);
    bool exponents = scale >= 1e18 || scale < 0.01 * (1 - 1e-9);
    if (magnitude < step * 1e-6) {
        print_number(0, exponents || step >= 1e3 ? 0 : decimals_for(step), trim, "", buf, buf_len);
    } else if (exponents) {
        format_exponent(value, step, scale, trim, buf, buf_len);
    } else if (magnitude >= 1e3) {
        int index = si_index(magnitude);
        double unit = pow(10, 3 * (index + 1));
        char suffix[2] = {si_prefixes[index], '\0'};
        print_number(value / unit, decimals_for(step / unit), trim, suffix, buf, buf_len);
    } else {
        print_number(value, decimals_for(step), trim, "", buf, buf_len);
    }
}

void plot_format_tick(double value, double step, double scale, char *buf, size_t buf_len) {
    format_number(value, step, scale, false, buf, buf_len);
}

const char *plot_format_value(double value, int significant, char *buf, size_t buf_len) {
    significant = significant < 1 ? 1 : significant > 6 ? 6 : significant;
    if (isnan(value)) {
        snprintf(buf, buf_len, "n/a");
        return buf;
    }
    if (isinf(value)) {
        snprintf(buf, buf_len, value > 0 ? "inf" : "-inf");
        return buf;
    }
    double rounded = round_significant(value, significant);
    /* The step of the last significant digit decides the decimals. */
    double step = rounded == 0 ? 1 : pow(10, floor(log10(fabs(rounded))) - (significant - 1));
    format_number(rounded, step, rounded, true, buf, buf_len);
    return buf;
}

void plot_format_si(double value, const char *unit, char *buf, size_t buf_len) {
    double rounded = round_significant(value, 3);
    int index = isfinite(rounded) ? si_index(fabs(rounded)) : -1;
    char number[PLOT_TICK_LABEL_LEN];
    plot_format_value(index < 0 ? rounded : rounded / pow(10, 3 * (index + 1)), 3, number,
                      sizeof number);
    snprintf(buf, buf_len, "%s %s%s", number, index < 0 ? "" : (char[]){si_prefixes[index], 0},
             unit);
}

/* ---- ticks ---- */

/* Adds a tick; a major one is labelled to the precision of step (see format_number). */
static void add_tick(plot_ticks *ticks, double value, bool major, double step, double scale) {
    if (ticks->count >= PLOT_MAX_TICKS) return;
    plot_tick *t = &ticks->tick[ticks->count++];
    t->value = value;
    t->major = major;
    t->label[0] = '\0';
    if (major) plot_format_tick(value, step, scale, t->label, sizeof t->label);
}

static bool within(const plot_axis *axis, double value) {
    double lo = fmin(axis->lo, axis->hi), hi = fmax(axis->lo, axis->hi);
    double slack = axis->log ? 0 : 1e-9 * (hi - lo);
    if (axis->log) lo /= 1 + 1e-9, hi *= 1 + 1e-9;
    return value >= lo - slack && value <= hi + slack;
}

/* Whether the labels of consecutive major ticks keep their distance on the axis. */
static bool labels_fit(const plot_axis *axis, bool vertical, const plot_font *font, double size,
                       const plot_ticks *ticks) {
    double previous_position = NAN, previous_extent = 0;
    double min_spacing = vertical ? MIN_TICK_SPACING_Y : MIN_TICK_SPACING_X;
    for (int i = 0; i < ticks->count; i++) {
        const plot_tick *t = &ticks->tick[i];
        if (!t->major) continue;
        double position = plot_axis_map(axis, t->value);
        double extent =
            vertical ? plot_text_height(font, size) : plot_text_width(font, size, t->label);
        if (!isnan(previous_position)) {
            double needed = (extent + previous_extent) / 2 + (vertical ? LABEL_GAP_Y : LABEL_GAP_X);
            if (fabs(position - previous_position) < fmax(needed, min_spacing)) return false;
        }
        previous_position = position, previous_extent = extent;
    }
    return true;
}

static int count_major(const plot_ticks *ticks) {
    int n = 0;
    for (int i = 0; i < ticks->count; i++) n += ticks->tick[i].major;
    return n;
}

/* Multiples of step within the axis; false when there would be too many. */
static bool linear_ticks_at(const plot_axis *axis, double step, plot_ticks *out) {
    double lo = fmin(axis->lo, axis->hi), hi = fmax(axis->lo, axis->hi);
    double first = ceil(lo / step - 1e-9), last = floor(hi / step + 1e-9);
    out->count = 0;
    if (last - first + 1 > PLOT_MAX_TICKS) return false;
    for (double k = first; k <= last; k++) {
        double value = fabs(k) < 0.5 ? 0 : k * step;
        if (!axis->log || value > 0) add_tick(out, value, true, step, fmax(fabs(lo), fabs(hi)));
    }
    return true;
}

/* 1/2/5 steps, from the finest sensible one to coarser, until the labels fit. */
static void linear_ticks(const plot_axis *axis, bool vertical, const plot_font *font, double size,
                         plot_ticks *out) {
    static const double mantissas[] = {1, 2, 5};
    double magnitude = pow(10, floor(log10(fabs(axis->hi - axis->lo) / PLOT_MAX_TICKS)));
    /* A step beyond the span leaves at most one tick, which always fits. */
    for (int decade = 0; decade < 32; decade++, magnitude *= 10)
        for (int m = 0; m < 3; m++)
            if (linear_ticks_at(axis, mantissas[m] * magnitude, out) &&
                labels_fit(axis, vertical, font, size, out))
                return;
}

/* Log ticks labelling every `every`-th decade, and 1-2-5 multiples when with_2_5 is set. */
static void log_ticks_at(const plot_axis *axis, int every, bool with_2_5, plot_ticks *out) {
    /* Within the decades of doubles, so that an axis that overflowed to inf (or reached 0)
     * cannot make the casts below undefined (found by tests/fuzz/fuzz_plot.c). */
    double lo = fmax(log10(fmin(axis->lo, axis->hi)), -324);
    double hi = fmin(log10(fmax(axis->lo, axis->hi)), 309);
    int first = (int)floor(lo), last = (int)ceil(hi);
    double pixels_per_decade = fabs(axis->pixel_hi - axis->pixel_lo) / (hi - lo);
    bool minor = every == 1 && pixels_per_decade >= MIN_DECADE_FOR_MINOR;
    out->count = 0;
    for (int d = first; d <= last; d++) {
        double decade = pow(10, d);
        bool labelled = d % every == 0;
        if (within(axis, decade) && (labelled || pixels_per_decade >= MIN_DECADE_FOR_TICK))
            add_tick(out, decade, labelled, decade, decade);
        for (int m = 2; m <= 9 && every == 1; m++) {
            bool major = with_2_5 && (m == 2 || m == 5);
            if ((major || minor) && within(axis, m * decade))
                add_tick(out, m * decade, major, decade, m * decade);
        }
    }
}

static void log_ticks(const plot_axis *axis, bool vertical, const plot_font *font, double size,
                      plot_ticks *out) {
    log_ticks_at(axis, 1, true, out);
    if (count_major(out) >= 3 && labels_fit(axis, vertical, font, size, out)) return;
    log_ticks_at(axis, 1, false, out);
    if (count_major(out) < 2) {
        /* Less than a decade or two: nice linear steps read better. */
        linear_ticks(axis, vertical, font, size, out);
        return;
    }
    for (int every = 1; every <= 64; every++) {
        log_ticks_at(axis, every, false, out);
        if (labels_fit(axis, vertical, font, size, out)) return;
    }
}

/* Formats an explicit tick value: integers as written up to 99999, else 3 significant digits. */
static void explicit_label(double value, char *buf, size_t buf_len) {
    if (value == round(value) && fabs(value) < 1e5)
        snprintf(buf, buf_len, "%.0f", value);
    else
        plot_format_value(value, 3, buf, buf_len);
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The given values within the axis, in order; every n-th labelled so that the labels fit. */
static void explicit_ticks(const plot_axis *axis, bool vertical, const plot_font *font, double size,
                           const double *values, size_t n, plot_ticks *out) {
    double shown[PLOT_MAX_TICKS];
    int n_shown = 0;
    for (size_t i = 0; i < n && n_shown < PLOT_MAX_TICKS; i++)
        if (plot_axis_accepts(axis->log, values[i]) && within(axis, values[i]))
            shown[n_shown++] = values[i];
    qsort(shown, (size_t)n_shown, sizeof shown[0], compare_doubles);
    for (int every = 1; every <= n_shown; every++) {
        out->count = 0;
        for (int i = 0; i < n_shown; i++) {
            add_tick(out, shown[i], i % every == 0, 1, shown[i]);
            if (i % every == 0) explicit_label(shown[i], out->tick[i].label, PLOT_TICK_LABEL_LEN);
        }
        if (labels_fit(axis, vertical, font, size, out)) return;
    }
}

void plot_axis_ticks(const plot_axis *axis, bool vertical, const plot_font *font, double size,
                     const double *explicit_values, size_t n_explicit, plot_ticks *out) {
    out->count = 0;
    if (explicit_values && n_explicit)
        explicit_ticks(axis, vertical, font, size, explicit_values, n_explicit, out);
    else if (axis->log)
        log_ticks(axis, vertical, font, size, out);
    else
        linear_ticks(axis, vertical, font, size, out);
}
