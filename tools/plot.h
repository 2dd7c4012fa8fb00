/*
 * plot: the project's own small raster chart library. It draws line, grouped bar, heatmap and
 * roofline charts into RGB images and writes them as PNG (stb_image_write); text is rendered
 * with stb_truetype from a TrueType font, or with stb_easy_font when no font file is found.
 *
 * Charts are described either in C (plot_chart) or in JSON (plot_spec_parse), so that a
 * benchmark can embed the specs in its result file and `gpt2 plot` can redraw them anywhere.
 *
 * The JSON chart spec (an object; fields not listed for its kind are rejected):
 *
 *   every kind:
 *     "kind":      "line" | "bar" | "heatmap" | "roofline"            (required)
 *     "file":      "name.png"   output file name, no folders (required by `gpt2 plot`)
 *     "title", "subtitle" (e.g. GPU, clocks, command line), "x_label", "y_label": strings
 *     "width", "height": integers in [PLOT_MIN_SIZE, PLOT_MAX_SIZE], default 1200 x 750
 *
 *   "line" (lines with markers; one series of one point is a scatter point):
 *     "series": [{"name": "fp16", "x": [...], "y": [...]}, ...]   x and y of equal length
 *     "x_log", "y_log": booleans (log10 axes; values <= 0 are then left out)
 *     "x_ticks", "y_ticks": [numbers] to label exactly these values (e.g. 128, 512, 2048)
 *     "reference_lines": [{"y": 3.0e12, "label": "copy bandwidth 3.0 TB/s"}, ...]
 *
 *   "bar" (grouped: one bar per series in each category):
 *     "categories": ["prefill", "attention", ...]
 *     "series": [{"name": "fused", "y": [...]}, ...]    one y per category
 *     "y_log", "y_ticks", "reference_lines" as for "line"; "value_labels": bool (print values)
 *     "stacked": bool: the series' bars of a category stacked, series 0 at the bottom, instead
 *                of side by side (a linear axis, no value labels; values < 0 are left out)
 *
 *   "heatmap" (row 0 at the top):
 *     "matrix": [[...], [...], ...]   rows of equal length
 *     "row_labels", "col_labels": [strings], one per row / column
 *     "z_min", "z_max": colour scale limits (default: the data range); "z_label": colour bar
 *     "cell_values": bool (default: print values when the cells are large enough)
 *
 *   "roofline" (log-log; x is arithmetic intensity in FLOP/byte, y is FLOP/s):
 *     "ceilings": {"bandwidth_bytes_per_s": 3.0e12, "flops_per_s": 6.8e14,
 *                  "bandwidth_label": "HBM3", "flops_label": "fp16 tensor"}   (labels optional)
 *     "points": [{"name": "attention", "intensity": 12.5, "flops_per_s": 2.1e13}, ...]
 *     "reference_lines" as for "line" (in FLOP/s)
 *
 * Numbers may be null: a missing value. Missing, infinite, and (on a log axis) non-positive
 * values are left out, and a line is broken where they occur.
 *
 * A result file that `gpt2 plot` draws is an object whose "charts" member is an array of chart
 * specs, each with its "file"; every other member of the result is ignored.
 */
#ifndef GPT2_PLOT_H
#define GPT2_PLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/json.h"

#define PLOT_DEFAULT_WIDTH 1200
#define PLOT_DEFAULT_HEIGHT 750
#define PLOT_MIN_SIZE 200
#define PLOT_MAX_SIZE 8000

typedef enum { PLOT_LINE, PLOT_BAR, PLOT_HEATMAP, PLOT_ROOFLINE } plot_kind;

typedef struct {
    const char *name;
    const double *x; /* [n]; unused by bar charts, which take y[i] for category i */
    const double *y; /* [n] */
    size_t n;
} plot_series;

typedef struct {
    double y;
    const char *label; /* may be NULL */
} plot_reference_line;

typedef struct {
    const char *name;
    double intensity;   /* FLOP per byte moved */
    double flops_per_s; /* achieved */
} plot_roofline_point;

/*
 * A chart. Everything is borrowed: the arrays and strings must outlive the drawing. Strings may
 * be NULL (nothing drawn); numbers may be NaN (missing). width/height of 0 mean the defaults.
 */
typedef struct {
    plot_kind kind;
    int width, height;
    const char *title, *subtitle, *x_label, *y_label;
    bool x_log, y_log;

    /* line and bar */
    const plot_series *series;
    size_t n_series;
    const plot_reference_line *reference_lines; /* also roofline */
    size_t n_reference_lines;
    const double *x_ticks, *y_ticks; /* explicit labelled ticks, or NULL */
    size_t n_x_ticks, n_y_ticks;

    /* bar */
    const char *const *categories;
    size_t n_categories;
    bool value_labels;
    bool stacked; /* one bar per category, the series stacked on it */

    /* heatmap */
    const double *matrix; /* [rows * cols], row-major, row 0 drawn at the top */
    size_t rows, cols;
    const char *const *row_labels, *const *col_labels; /* [rows], [cols], or NULL */
    double z_min, z_max;                               /* NaN: the data's range */
    const char *z_label;
    enum { PLOT_CELL_VALUES_AUTO, PLOT_CELL_VALUES_ON, PLOT_CELL_VALUES_OFF } cell_values;

    /* roofline */
    double bandwidth_bytes_per_s, peak_flops_per_s;
    const char *bandwidth_label, *flops_label; /* names of the ceilings, or NULL */
    const plot_roofline_point *points;
    size_t n_points;
} plot_chart;

/* A chart with every field at its default: no data, no text, NaN z limits. */
plot_chart plot_chart_defaults(plot_kind kind);

typedef struct {
    uint8_t r, g, b;
} plot_color;

/* The colour of series i (and of roofline point i): the Okabe-Ito colour-blind-safe palette. */
plot_color plot_series_color(size_t index);
/* The colour of the chart background. */
plot_color plot_background_color(void);

/*
 * One axis: data values in [lo, hi] map linearly (or linearly in log10) onto pixel coordinates
 * [pixel_lo, pixel_hi]. Pixel (i, j) covers [i, i+1) x [j, j+1) of the image.
 */
typedef struct {
    double lo, hi;
    bool log;
    double pixel_lo, pixel_hi;
} plot_axis;

double plot_axis_map(const plot_axis *axis, double value);

/*
 * Where a drawn chart put its plot area and its axes. Bar charts: x is the category index
 * (category i spans [i, i + 1)); heatmaps: x is the column and y the row index, likewise.
 */
typedef struct {
    double left, top, right, bottom;
    plot_axis x, y;
} plot_layout;

typedef struct plot_font plot_font;

/*
 * Loads the TrueType font named by $GPT2_FONT, else the first of a few standard DejaVu Sans /
 * Liberation Sans paths. When none loads it returns the built-in bitmap font and, when note is
 * not NULL, writes one line saying so into note (otherwise note becomes ""). NULL only when out
 * of memory.
 */
plot_font *plot_font_load(char *note, size_t note_len);
/* The built-in bitmap font (stb_easy_font, scaled); NULL only when out of memory. */
plot_font *plot_font_builtin(void);
void plot_font_free(plot_font *font);

/*
 * Draws the chart and writes it as a PNG. layout, when not NULL, receives where the plot area
 * and axes went. Returns 0, or -1 with one line in err (a bad chart, out of memory, or the file
 * could not be written).
 */
int plot_chart_write_png(const plot_chart *chart, const plot_font *font, const char *path,
                         plot_layout *layout, char *err, size_t err_len);

/* A chart read from JSON: the chart plus the memory it owns. */
typedef struct {
    plot_chart chart;
    const char *file; /* the "file" member, or NULL */
    struct plot_arena_block *arena;
} plot_spec;

/*
 * Reads a chart spec (see the top of this file). Strings point into the JSON document, which
 * must outlive the spec. Returns 0, or -1 with one line in err naming the field that is wrong
 * ("series[1].y[4]: expected a number or null"); *out is then empty.
 */
int plot_spec_parse(const json_value *spec, plot_spec *out, char *err, size_t err_len);
void plot_spec_free(plot_spec *spec);

/*
 * Formats a value with `significant` digits (1..6) and an SI suffix from 1e3 up: 0.05, 12.5,
 * 3.2k, 1.5M, 680T; below 0.01 as 2.5e-3. Returns buf.
 */
const char *plot_format_value(double value, int significant, char *buf, size_t buf_len);

#endif
