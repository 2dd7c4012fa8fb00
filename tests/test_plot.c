/*
 * The plot library and `gpt2 plot`: every chart kind is drawn to a temporary folder, decoded
 * again with stb_image and checked pixel by pixel (size, background, series colours, where a
 * value lands on a log axis); bad specs must be refused naming the field; degenerate data must
 * not crash; and `gpt2 plot` must redraw the examples in tests/plot_examples/.
 * usage: test_plot GPT2 EXAMPLES_DIR   (TEST_PLOT_KEEP=1 keeps the PNGs and prints where)
 */
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "model/json.h"
#include "tests/check.h"
#include "tools/plot.h"
#include "tools/plot_internal.h"

static char work_dir[] = "/tmp/test_plot.XXXXXX";

typedef struct {
    unsigned char *rgb;
    int width, height, channels;
} image;

static void image_path(const char *name, char *path, size_t len) {
    snprintf(path, len, "%s/%s", work_dir, name);
}

/* Decodes a PNG as written (channels as stored). False when it cannot be read. */
static bool load_png(const char *path, image *out) {
    out->rgb = stbi_load(path, &out->width, &out->height, &out->channels, 0);
    return out->rgb != NULL;
}

static plot_color pixel_at(const image *im, int x, int y) {
    const unsigned char *p = im->rgb + ((size_t)y * im->width + x) * im->channels;
    return (plot_color){p[0], p[1], p[2]};
}

static int color_distance(plot_color a, plot_color b) {
    return abs(a.r - b.r) + abs(a.g - b.g) + abs(a.b - b.b);
}

/* Pixels within the rectangle whose colour is within tolerance of color. */
static int count_color(const image *im, plot_rect r, plot_color color, int tolerance) {
    int n = 0;
    for (int y = (int)fmax(r.y0, 0); y < (int)fmin(r.y1, im->height); y++)
        for (int x = (int)fmax(r.x0, 0); x < (int)fmin(r.x1, im->width); x++)
            n += color_distance(pixel_at(im, x, y), color) <= tolerance;
    return n;
}

static plot_rect area_of(const plot_layout *l) {
    return (plot_rect){l->left, l->top, l->right, l->bottom};
}

/*
 * Draws the chart to name, decodes it, and checks the size, the RGB format and the white
 * corner. Returns the image (rgb NULL on failure, already reported).
 */
static image draw_and_load(const plot_chart *chart, const plot_font *font, const char *name,
                           plot_layout *layout) {
    char path[512], err[256] = "";
    image im = {0};
    image_path(name, path, sizeof path);
    int rc = plot_chart_write_png(chart, font, path, layout, err, sizeof err);
    CHECK(rc == 0, "%s: %s", name, err);
    if (rc != 0) return im;
    CHECK(load_png(path, &im), "%s: cannot decode the PNG", name);
    if (!im.rgb) return im;
    int width = chart->width ? chart->width : PLOT_DEFAULT_WIDTH;
    int height = chart->height ? chart->height : PLOT_DEFAULT_HEIGHT;
    CHECK(im.width == width && im.height == height, "%s: %dx%d, expected %dx%d", name, im.width,
          im.height, width, height);
    CHECK(im.channels == 3, "%s: %d channels", name, im.channels);
    plot_color white = plot_background_color();
    CHECK(color_distance(pixel_at(&im, 0, 0), white) == 0 &&
              color_distance(pixel_at(&im, im.width - 1, im.height - 1), white) == 0,
          "%s: corners are not the background colour", name);
    return im;
}

static void test_line_chart_log_axis(const plot_font *font) {
    const double x[] = {1, 2, 5, 10, 20, 50, 100};
    const double flat[] = {100, 100, 100, 100, 100, 100, 100};
    const double rising[] = {1, 3, 20, 60, 300, 900, 3000};
    const plot_series series[] = {{"flat at 100", x, flat, 7}, {"rising", x, rising, 7}};
    const plot_reference_line reference = {2000, "limit 2k"};
    plot_chart c = plot_chart_defaults(PLOT_LINE);
    c.title = "log-log line chart";
    c.x_label = "x", c.y_label = "y";
    c.x_log = c.y_log = true;
    c.series = series, c.n_series = 2;
    c.reference_lines = &reference, c.n_reference_lines = 1;
    c.width = 900, c.height = 600;
    plot_layout layout;
    image im = draw_and_load(&c, font, "line_log.png", &layout);
    if (!im.rgb) return;
    plot_rect area = area_of(&layout);
    for (size_t i = 0; i < 2; i++)
        CHECK(count_color(&im, area, plot_series_color(i), 30) > 150,
              "series %zu's colour is missing from the plot area", i);
    /* Equal ratios are equal distances on a log axis. */
    double at10 = plot_axis_map(&layout.y, 10), at100 = plot_axis_map(&layout.y, 100);
    double at1000 = plot_axis_map(&layout.y, 1000);
    CHECK(fabs((at10 - at100) - (at100 - at1000)) < 1e-6 && at10 > at100, "log y mapping: %g %g %g",
          at10, at100, at1000);
    /* The flat series is drawn exactly on the row where the axis puts 100. */
    int row = (int)floor(at100);
    int column = (int)plot_axis_map(&layout.x, 30); /* between markers */
    plot_color blue = plot_series_color(0);
    CHECK(color_distance(pixel_at(&im, column, row), blue) <= 30,
          "pixel (%d, %d) is not the flat series' colour", column, row);
    CHECK(color_distance(pixel_at(&im, column, row - 6), blue) > 100 &&
              color_distance(pixel_at(&im, column, row + 6), blue) > 100,
          "the flat series is thicker or elsewhere than row %d", row);
    stbi_image_free(im.rgb);
}

static void test_bar_chart(const plot_font *font) {
    const char *const categories[] = {"embedding", "a rather long category name that wraps",
                                      "attention"};
    const double fused[] = {10, 250, 120}, unfused[] = {14, 300, 390};
    const plot_series series[] = {{"fused", NULL, fused, 3}, {"unfused", NULL, unfused, 3}};
    plot_chart c = plot_chart_defaults(PLOT_BAR);
    c.title = "grouped bars";
    c.y_label = "time (us)";
    c.categories = categories, c.n_categories = 3;
    c.series = series, c.n_series = 2;
    c.value_labels = true;
    for (int log = 0; log < 2; log++) {
        c.y_log = log;
        plot_layout layout;
        image im = draw_and_load(&c, font, log ? "bar_log.png" : "bar.png", &layout);
        if (!im.rgb) continue;
        for (size_t i = 0; i < 2; i++)
            CHECK(count_color(&im, area_of(&layout), plot_series_color(i), 10) > 1000,
                  "bar colour %zu is missing (log %d)", i, log);
        /* The tallest bar reaches the row of its value; unfused is right of the middle. */
        int row = (int)ceil(plot_axis_map(&layout.y, 390)) + 1;
        int column = (int)plot_axis_map(&layout.x, 2.7);
        CHECK(color_distance(pixel_at(&im, column, row), plot_series_color(1)) <= 10,
              "the bar of 390 does not reach row %d (log %d)", row, log);
        stbi_image_free(im.rgb);
    }
}

static void test_heatmap(const plot_font *font) {
    enum { ROWS = 3, COLS = 4 };
    const double matrix[ROWS * COLS] = {0, 1, 2, 3, 4, 5, NAN, 7, 8, 9, 10, 11};
    const char *const rows[] = {"r0", "r1", "r2"}, *const cols[] = {"c0", "c1", "c2", "c3"};
    plot_chart c = plot_chart_defaults(PLOT_HEATMAP);
    c.title = "heatmap";
    c.matrix = matrix, c.rows = ROWS, c.cols = COLS;
    c.row_labels = rows, c.col_labels = cols;
    c.z_label = "value";
    c.cell_values = PLOT_CELL_VALUES_OFF;
    plot_layout layout;
    image im = draw_and_load(&c, font, "heatmap.png", &layout);
    if (!im.rgb) return;
    plot_color low =
        pixel_at(&im, (int)plot_axis_map(&layout.x, 0.5), (int)plot_axis_map(&layout.y, 0.5));
    plot_color high =
        pixel_at(&im, (int)plot_axis_map(&layout.x, 3.5), (int)plot_axis_map(&layout.y, 2.5));
    plot_color missing =
        pixel_at(&im, (int)plot_axis_map(&layout.x, 2.5), (int)plot_axis_map(&layout.y, 1.5));
    CHECK(color_distance(low, (plot_color){0x44, 0x01, 0x54}) <= 6,
          "lowest cell is not dark purple");
    CHECK(color_distance(high, (plot_color){0xfd, 0xe7, 0x25}) <= 6, "highest cell is not yellow");
    CHECK(missing.r == missing.g && missing.g == missing.b, "the missing cell is not grey");
    stbi_image_free(im.rgb);
}

static void test_roofline(const plot_font *font) {
    const plot_roofline_point points[] = {{"memory bound", 0.5, 1.2e12},
                                          {"gemm", 300, 5e14},
                                          {"no intensity", NAN, 1e12},
                                          {"zero", 0, 1e12}};
    plot_chart c = plot_chart_defaults(PLOT_ROOFLINE);
    c.title = "roofline";
    c.bandwidth_bytes_per_s = 3.0e12, c.peak_flops_per_s = 6.8e14;
    c.points = points, c.n_points = 4;
    plot_layout layout;
    image im = draw_and_load(&c, font, "roofline.png", &layout);
    if (!im.rgb) return;
    CHECK(layout.x.log && layout.y.log, "roofline axes are not log-log");
    for (size_t i = 0; i < 2; i++) {
        int x = (int)plot_axis_map(&layout.x, points[i].intensity);
        int y = (int)plot_axis_map(&layout.y, points[i].flops_per_s);
        CHECK(color_distance(pixel_at(&im, x, y), plot_series_color(i)) <= 30,
              "point %zu is not drawn at (%d, %d)", i, x, y);
    }
    /* The flat roof at the peak, right of the ridge (227 FLOP/byte). */
    int x = (int)plot_axis_map(&layout.x, 2000), y = (int)floor(plot_axis_map(&layout.y, 6.8e14));
    CHECK(count_color(&im, (plot_rect){x, y - 1, x + 1, y + 2}, (plot_color){0x33, 0x33, 0x33},
                      40) > 0,
          "no roof at (%d, %d)", x, y);
    stbi_image_free(im.rgb);
}

/* Charts with nothing sensible to draw must still come out as images. */
static void test_degenerate_data(const plot_font *font, const char *suffix) {
    const double x[] = {1, 2, 3, 4}, nan_y[] = {NAN, INFINITY, -INFINITY, NAN};
    const double equal[] = {5, 5, 5, 5}, mixed[] = {-1, 0, NAN, 10};
    const double one_x[] = {3}, one_y[] = {7};
    const plot_series series[] = {
        {"all missing", x, nan_y, 4},       {"empty", x, x, 0},
        {"all equal", x, equal, 4},         {"single point", one_x, one_y, 1},
        {"some non-positive", x, mixed, 4}, {NULL, x, equal, 4}};
    char name[64];
    struct {
        const plot_series *series;
        size_t n;
        bool log;
        const char *what;
    } cases[] = {{series, 6, false, "mixed"},           {series, 6, true, "mixed_log"},
                 {series, 2, false, "nan_only"},        {series + 1, 1, true, "empty_only"},
                 {series + 3, 1, true, "single_point"}, {series + 2, 1, false, "all_equal"},
                 {NULL, 0, false, "no_series"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        plot_chart c = plot_chart_defaults(PLOT_LINE);
        c.title = cases[i].what;
        c.series = cases[i].series, c.n_series = cases[i].n;
        c.x_log = c.y_log = cases[i].log;
        snprintf(name, sizeof name, "degenerate_%s%s.png", cases[i].what, suffix);
        image im = draw_and_load(&c, font, name, NULL);
        stbi_image_free(im.rgb);
    }
    plot_chart bars = plot_chart_defaults(PLOT_BAR);
    bars.series = series + 2, bars.n_series = 1, bars.y_log = true, bars.value_labels = true;
    snprintf(name, sizeof name, "degenerate_bars%s.png", suffix);
    image im = draw_and_load(&bars, font, name, NULL);
    stbi_image_free(im.rgb);
    const char *const one[] = {"only"};
    bars.categories = one, bars.n_categories = 1, bars.series = series, bars.n_series = 1;
    snprintf(name, sizeof name, "degenerate_bars_nan%s.png", suffix);
    im = draw_and_load(&bars, font, name, NULL);
    stbi_image_free(im.rgb);
    plot_chart heat = plot_chart_defaults(PLOT_HEATMAP);
    heat.matrix = nan_y, heat.rows = 2, heat.cols = 2, heat.cell_values = PLOT_CELL_VALUES_ON;
    snprintf(name, sizeof name, "degenerate_heatmap_nan%s.png", suffix);
    im = draw_and_load(&heat, font, name, NULL);
    stbi_image_free(im.rgb);
    heat.rows = heat.cols = 0;
    snprintf(name, sizeof name, "degenerate_heatmap_empty%s.png", suffix);
    im = draw_and_load(&heat, font, name, NULL);
    stbi_image_free(im.rgb);
    plot_chart roof = plot_chart_defaults(PLOT_ROOFLINE);
    snprintf(name, sizeof name, "degenerate_roofline%s.png", suffix);
    im = draw_and_load(&roof, font, name, NULL);
    stbi_image_free(im.rgb);
    plot_chart tiny = plot_chart_defaults(PLOT_LINE);
    tiny.width = tiny.height = PLOT_MIN_SIZE;
    tiny.title = "a very long title that cannot possibly fit into two hundred pixels of width";
    tiny.subtitle = tiny.title, tiny.x_label = tiny.title, tiny.y_label = tiny.title;
    tiny.series = series + 2, tiny.n_series = 3;
    snprintf(name, sizeof name, "degenerate_tiny%s.png", suffix);
    im = draw_and_load(&tiny, font, name, NULL);
    stbi_image_free(im.rgb);
}

/* A GPT2_FONT that is not a font is reported, and the search goes on. */
static void test_font_override(void) {
    setenv("GPT2_FONT", "/nonexistent/font.ttf", 1);
    char note[256] = "";
    plot_font *font = plot_font_load(note, sizeof note);
    CHECK(font != NULL, "no font");
    CHECK(strstr(note, "/nonexistent/font.ttf") != NULL, "bad GPT2_FONT not reported: '%s'", note);
    plot_chart c = plot_chart_defaults(PLOT_LINE);
    c.title = "drawn with the font found after a bad GPT2_FONT";
    image im = draw_and_load(&c, font, "font_override.png", NULL);
    stbi_image_free(im.rgb);
    plot_font_free(font);
    unsetenv("GPT2_FONT");
}

static void test_bad_charts(const plot_font *font) {
    plot_chart c = plot_chart_defaults(PLOT_LINE);
    c.n_series = 2; /* and no array */
    char path[512], err[256] = "";
    image_path("bad.png", path, sizeof path);
    CHECK(plot_chart_write_png(&c, font, path, NULL, err, sizeof err) != 0 && err[0],
          "a chart with a count but no series was drawn");
    c = plot_chart_defaults(PLOT_LINE);
    CHECK(plot_chart_write_png(&c, font, "/nonexistent-dir/x.png", NULL, err, sizeof err) != 0 &&
              strstr(err, "/nonexistent-dir/x.png"),
          "writing into a missing folder: '%s'", err);
}

/* ---- JSON specs ---- */

/* Parses a spec from JSON text; *doc (which the spec points into) is for the caller to free. */
static int parse_spec(const char *json, json_document **doc, plot_spec *spec, char *err,
                      size_t err_len) {
    char json_err[256];
    *doc = json_parse(json, strlen(json), json_err, sizeof json_err);
    if (!*doc) {
        snprintf(err, err_len, "invalid test JSON: %.200s", json_err);
        return -2;
    }
    return plot_spec_parse(json_root(*doc), spec, err, err_len);
}

static void expect_bad_spec(const char *json, const char *message) {
    plot_spec spec;
    json_document *doc;
    char err[256] = "";
    int rc = parse_spec(json, &doc, &spec, err, sizeof err);
    json_free(doc);
    CHECK(rc == -1, "accepted bad spec %s (rc %d, %s)", json, rc, err);
    CHECK(strstr(err, message) != NULL, "for %s: error '%s' lacks '%s'", json, err, message);
    CHECK(strchr(err, '\n') == NULL, "error is not one line: %s", err);
}

static void test_spec_errors(void) {
    expect_bad_spec("[]", "expected an object, not array");
    expect_bad_spec("{}", "kind: missing");
    expect_bad_spec("{\"kind\":\"pie\"}", "kind: 'pie' is not");
    expect_bad_spec("{\"kind\":\"line\"}", "series: missing");
    expect_bad_spec("{\"kind\":\"line\",\"serie\":[]}", "unknown field 'serie'");
    expect_bad_spec("{\"kind\":\"line\",\"series\":{}}", "series: expected an array, not object");
    expect_bad_spec("{\"kind\":\"line\",\"series\":[{\"x\":[1,2],\"y\":[1]}]}",
                    "series[0]: x has 2 values but y has 1");
    expect_bad_spec(
        "{\"kind\":\"line\",\"series\":[{\"x\":[1],\"y\":[1]},{\"x\":[1],\"y\":[\"a\"]}]}",
        "series[1].y[0]: expected a number or null, not string");
    expect_bad_spec("{\"kind\":\"line\",\"series\":[{\"y\":[1]}]}", "series[0].x: missing");
    expect_bad_spec("{\"kind\":\"line\",\"series\":[{\"x\":[],\"y\":[],\"colour\":1}]}",
                    "series[0]: unknown field 'colour'");
    expect_bad_spec("{\"kind\":\"line\",\"series\":[],\"x_log\":1}",
                    "x_log: expected true or false");
    expect_bad_spec("{\"kind\":\"line\",\"series\":[],\"width\":50}", "width: expected an integer");
    expect_bad_spec("{\"kind\":\"line\",\"series\":[],\"height\":600.5}",
                    "height: expected an integer");
    expect_bad_spec("{\"kind\":\"line\",\"series\":[],\"title\":3}", "title: expected a string");
    expect_bad_spec("{\"kind\":\"line\",\"series\":[],\"reference_lines\":[{\"label\":\"x\"}]}",
                    "reference_lines[0].y: missing");
    expect_bad_spec("{\"kind\":\"line\",\"series\":[],\"matrix\":[]}",
                    "matrix: does not apply to line charts");
    expect_bad_spec("{\"kind\":\"bar\",\"series\":[]}", "categories: missing");
    expect_bad_spec("{\"kind\":\"bar\",\"categories\":[\"a\"],\"series\":[{\"y\":[1,2]}]}",
                    "series[0]: y has 2 values for 1 categories");
    expect_bad_spec("{\"kind\":\"bar\",\"categories\":[\"a\"],\"series\":[{\"x\":[1],\"y\":[1]}]}",
                    "series[0]: unknown field 'x'");
    expect_bad_spec("{\"kind\":\"bar\",\"categories\":[1],\"series\":[]}",
                    "categories[0]: expected a string");
    expect_bad_spec("{\"kind\":\"bar\",\"categories\":[],\"series\":[],\"x_log\":true}",
                    "x_log: does not apply to bar charts");
    expect_bad_spec("{\"kind\":\"heatmap\",\"matrix\":[[1,2],[3]]}",
                    "matrix[1]: has 1 values but matrix[0] has 2");
    expect_bad_spec("{\"kind\":\"heatmap\",\"matrix\":[[]]}", "matrix[0]: is empty");
    expect_bad_spec("{\"kind\":\"heatmap\",\"matrix\":[[1]],\"row_labels\":[\"a\",\"b\"]}",
                    "row_labels: has 2 labels for 1 rows");
    expect_bad_spec("{\"kind\":\"heatmap\",\"matrix\":[[1]],\"z_min\":2,\"z_max\":1}",
                    "z_min: is greater than z_max");
    expect_bad_spec("{\"kind\":\"roofline\",\"points\":[]}", "ceilings: missing");
    expect_bad_spec("{\"kind\":\"roofline\",\"ceilings\":{\"bandwidth_bytes_per_s\":-1,"
                    "\"flops_per_s\":1},\"points\":[]}",
                    "ceilings.bandwidth_bytes_per_s: must be positive");
    expect_bad_spec("{\"kind\":\"roofline\",\"ceilings\":{\"bandwidth_bytes_per_s\":1,"
                    "\"flops_per_s\":1},\"points\":[{\"name\":\"k\",\"intensity\":1}]}",
                    "points[0].flops_per_s: missing");
}

static void test_spec_draws(const plot_font *font) {
    static const char json[] =
        "{\"kind\":\"line\",\"file\":\"spec.png\",\"title\":\"from JSON\",\"width\":640,"
        "\"height\":480,\"x_log\":true,\"x_ticks\":[1,4,16],\"series\":[{\"name\":\"a\","
        "\"x\":[1,2,4,8,16],\"y\":[1,null,3,4,5]}],\"reference_lines\":[{\"y\":4.5}]}";
    plot_spec spec;
    json_document *doc;
    char err[256] = "";
    CHECK(parse_spec(json, &doc, &spec, err, sizeof err) == 0, "valid spec refused: %s", err);
    if (err[0]) {
        json_free(doc);
        return;
    }
    CHECK(spec.file && strcmp(spec.file, "spec.png") == 0, "file");
    CHECK(spec.chart.n_series == 1 && isnan(spec.chart.series[0].y[1]), "null is a missing value");
    CHECK(spec.chart.n_x_ticks == 3 && spec.chart.x_log && !spec.chart.y_log, "axes");
    plot_layout layout;
    image im = draw_and_load(&spec.chart, font, "spec.png", &layout);
    if (im.rgb)
        CHECK(count_color(&im, area_of(&layout), plot_series_color(0), 30) > 100,
              "no series drawn");
    stbi_image_free(im.rgb);
    plot_spec_free(&spec);
    json_free(doc);
}

/* ---- numbers on axes ---- */

static void expect_value(double value, int significant, const char *expected) {
    char buf[32];
    plot_format_value(value, significant, buf, sizeof buf);
    CHECK(strcmp(buf, expected) == 0, "%g with %d digits: '%s', expected '%s'", value, significant,
          buf, expected);
}

/* The labelled ticks of an axis, joined by spaces. */
static void tick_labels(const plot_font *font, plot_axis axis, bool vertical, char *out,
                        size_t len) {
    plot_ticks ticks;
    plot_axis_ticks(&axis, vertical, font, PLOT_TICK_SIZE, NULL, 0, &ticks);
    out[0] = '\0';
    for (int i = 0; i < ticks.count; i++)
        if (ticks.tick[i].major)
            snprintf(out + strlen(out), len - strlen(out), "%s%s", out[0] ? " " : "",
                     ticks.tick[i].label);
}

static void expect_ticks(const plot_font *font, plot_axis axis, bool vertical,
                         const char *expected) {
    char labels[512];
    tick_labels(font, axis, vertical, labels, sizeof labels);
    CHECK(strcmp(labels, expected) == 0, "ticks on [%g, %g]%s: '%s', expected '%s'", axis.lo,
          axis.hi, axis.log ? " (log)" : "", labels, expected);
}

static void test_number_formats(const plot_font *font) {
    expect_value(0, 3, "0");
    expect_value(12.5, 3, "12.5");
    expect_value(1234, 3, "1.23k");
    expect_value(999.96, 3, "1k");
    expect_value(1e6, 3, "1M");
    expect_value(6.8e14, 3, "680T");
    expect_value(-0.05, 2, "-0.05");
    expect_value(0.00025, 3, "2.5e-4");
    expect_value(0.005, 3, "5e-3");
    expect_value(0.01, 3, "0.01");
    expect_value(3e21, 3, "3e21");
    expect_value(NAN, 3, "n/a");
    char si[32];
    plot_format_si(3.0e12, "B/s", si, sizeof si);
    CHECK(strcmp(si, "3 TB/s") == 0, "SI: '%s'", si);
    expect_ticks(font, (plot_axis){1, 1e6, true, 0, 800}, false, "1 10 100 1k 10k 100k 1M");
    expect_ticks(font, (plot_axis){1e-4, 1, true, 400, 0}, true, "1e-4 1e-3 0.01 0.1 1");
    expect_ticks(font, (plot_axis){0, 1, false, 600, 0}, true,
                 "0.0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1.0");
    expect_ticks(font, (plot_axis){0, 25000, false, 0, 1000}, false,
                 "0 2k 4k 6k 8k 10k 12k 14k 16k 18k 20k 22k 24k");
    expect_ticks(font, (plot_axis){20, 800, true, 0, 1000}, false, "20 50 100 200 500");
    expect_ticks(font, (plot_axis){0, 0.02, false, 400, 0}, true, "0.000 0.005 0.010 0.015 0.020");
    expect_ticks(font, (plot_axis){0, 0.002, false, 400, 0}, true, "0 0.5e-3 1.0e-3 1.5e-3 2.0e-3");
    expect_ticks(font, (plot_axis){-2.5, 2.5, false, 0, 600}, false,
                 "-2.5 -2.0 -1.5 -1.0 -0.5 0.0 0.5 1.0 1.5 2.0 2.5");
}

/* ---- gpt2 plot ---- */

/* Runs gpt2 with args, stdout and stderr into files in the work folder. Returns the exit code. */
static int run_gpt2(const char *gpt2, const char *const *args) {
    char *argv[16] = {(char *)gpt2, "plot"};
    int argc = 2;
    for (; args[argc - 2] && argc < 15; argc++) argv[argc] = (char *)args[argc - 2];
    argv[argc] = NULL;
    char out[512], err[512];
    image_path("stdout.txt", out, sizeof out);
    image_path("stderr.txt", err, sizeof err);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (freopen(out, "w", stdout) && freopen(err, "w", stderr)) execv(gpt2, argv);
        _exit(127);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The contents of a file in the work folder (at most len - 1 bytes). */
static void read_work_file(const char *name, char *buf, size_t len) {
    char path[512];
    image_path(name, path, sizeof path);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, len - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
}

static void write_work_file(const char *name, const char *text) {
    char path[512];
    image_path(name, path, sizeof path);
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
}

static void expect_cli_error(const char *gpt2, const char *const *args, const char *message) {
    int rc = run_gpt2(gpt2, args);
    char err[1024];
    read_work_file("stderr.txt", err, sizeof err);
    CHECK(rc != 0 && rc != 127, "gpt2 plot %s: exit %d", args[0], rc);
    CHECK(strstr(err, message) != NULL, "gpt2 plot %s: stderr '%s' lacks '%s'", args[0], err,
          message);
    char *newline = strchr(err, '\n');
    CHECK(newline && newline[1] == '\0', "gpt2 plot %s: stderr is not one line: '%s'", args[0],
          err);
}

/* Every chart file named in the example result is written, decodes, and has its size. */
static void check_example_outputs(const char *example, const char *out_dir) {
    FILE *f = fopen(example, "rb");
    char text[1 << 16];
    size_t n = f ? fread(text, 1, sizeof text, f) : 0;
    if (f) fclose(f);
    json_document *doc = json_parse(text, n, NULL, 0);
    const json_value *charts = doc ? json_object_get(json_root(doc), "charts") : NULL;
    CHECK(json_length(charts) > 0, "%s: no charts", example);
    for (size_t i = 0; i < json_length(charts); i++) {
        const json_value *chart = json_array_at(charts, i);
        const char *file = json_get_string(json_object_get(chart, "file"), NULL);
        double width = PLOT_DEFAULT_WIDTH, height = PLOT_DEFAULT_HEIGHT;
        json_get_double(json_object_get(chart, "width"), &width);
        json_get_double(json_object_get(chart, "height"), &height);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", out_dir, file ? file : "?");
        image im;
        CHECK(load_png(path, &im), "%s: %s was not written or does not decode", example, path);
        if (!im.rgb) continue;
        CHECK(im.width == width && im.height == height && im.channels == 3, "%s: %dx%dx%d", path,
              im.width, im.height, im.channels);
        stbi_image_free(im.rgb);
    }
    json_free(doc);
}

static void test_cli(const char *gpt2, const char *examples) {
    DIR *dir = opendir(examples);
    CHECK(dir != NULL, "cannot open %s", examples);
    int n_examples = 0;
    char out_dir[512];
    image_path("examples", out_dir, sizeof out_dir);
    for (struct dirent *e; dir && (e = readdir(dir));) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0) continue;
        char example[1024];
        snprintf(example, sizeof example, "%s/%s", examples, e->d_name);
        const char *args[] = {example, "-o", out_dir, NULL};
        int rc = run_gpt2(gpt2, args);
        char out[1024];
        read_work_file("stdout.txt", out, sizeof out);
        CHECK(rc == 0, "gpt2 plot %s: exit %d", example, rc);
        CHECK(strstr(out, out_dir) != NULL, "gpt2 plot %s did not print the paths: '%s'", example,
              out);
        check_example_outputs(example, out_dir);
        n_examples++;
    }
    if (dir) closedir(dir);
    CHECK(n_examples >= 5, "only %d examples in %s", n_examples, examples);

    /* Without -o the PNG goes next to the result file. */
    write_work_file("next_to.json", "{\"charts\":[{\"file\":\"next_to.png\",\"kind\":\"bar\","
                                    "\"categories\":[\"a\"],\"series\":[{\"y\":[1]}]}]}");
    char result[512], png[512];
    image_path("next_to.json", result, sizeof result);
    image_path("next_to.png", png, sizeof png);
    CHECK(run_gpt2(gpt2, (const char *[]){result, NULL}) == 0, "gpt2 plot next_to.json failed");
    struct stat st;
    CHECK(stat(png, &st) == 0 && st.st_size > 0, "%s was not written", png);

    write_work_file("broken.json", "{\"charts\": [");
    write_work_file("no_charts.json", "{\"results\": []}");
    write_work_file("bad_field.json", "{\"charts\":[{\"file\":\"a.png\",\"kind\":\"line\","
                                      "\"series\":[]},{\"file\":\"b.png\",\"kind\":\"line\","
                                      "\"series\":[{\"x\":[1],\"y\":[true]}]}]}");
    write_work_file("no_file.json", "{\"charts\":[{\"kind\":\"line\",\"series\":[]}]}");
    write_work_file("bad_file.json",
                    "{\"charts\":[{\"file\":\"../x.png\",\"kind\":\"line\",\"series\":[]}]}");
    write_work_file("twice.json",
                    "{\"charts\":[{\"file\":\"a.png\",\"kind\":\"line\",\"series\":[]},"
                    "{\"file\":\"a.png\",\"kind\":\"line\",\"series\":[]}]}");
    char path[512];
    image_path("missing.json", path, sizeof path);
    expect_cli_error(gpt2, (const char *[]){path, NULL}, "No such file");
    image_path("broken.json", path, sizeof path);
    expect_cli_error(gpt2, (const char *[]){path, NULL}, "line 1, column");
    image_path("no_charts.json", path, sizeof path);
    expect_cli_error(gpt2, (const char *[]){path, NULL}, "no \"charts\" array");
    image_path("bad_field.json", path, sizeof path);
    expect_cli_error(gpt2, (const char *[]){path, NULL},
                     "charts[1]: series[0].y[0]: expected a number");
    image_path("no_file.json", path, sizeof path);
    expect_cli_error(gpt2, (const char *[]){path, NULL}, "charts[0].file: missing");
    image_path("bad_file.json", path, sizeof path);
    expect_cli_error(gpt2, (const char *[]){path, NULL}, "is not a file name ending in .png");
    image_path("twice.json", path, sizeof path);
    expect_cli_error(gpt2, (const char *[]){path, NULL}, "is also the file of charts[0]");
    expect_cli_error(gpt2, (const char *[]){"--frob", NULL}, "unknown argument '--frob'");
    expect_cli_error(gpt2, (const char *[]){NULL}, "missing RESULT.json");
    CHECK(run_gpt2(gpt2, (const char *[]){"--help", NULL}) == 0, "gpt2 plot --help failed");
}

/* Deletes the work folder (flat but for the examples folder). */
static void remove_work_dir(void) {
    char sub[512];
    image_path("examples", sub, sizeof sub);
    const char *dirs[] = {sub, work_dir};
    for (int d = 0; d < 2; d++) {
        DIR *dir = opendir(dirs[d]);
        for (struct dirent *e; dir && (e = readdir(dir));) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dirs[d], e->d_name);
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "examples"))
                remove(path);
        }
        if (dir) closedir(dir);
        rmdir(dirs[d]);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_plot GPT2 EXAMPLES_DIR\n");
        return EXIT_FAILURE;
    }
    if (!mkdtemp(work_dir)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    plot_font *font = plot_font_load(NULL, 0), *builtin = plot_font_builtin();
    if (!font || !builtin) return EXIT_FAILURE;
    test_number_formats(font);
    test_line_chart_log_axis(font);
    test_bar_chart(font);
    test_heatmap(font);
    test_roofline(font);
    test_degenerate_data(font, "");
    test_degenerate_data(builtin, "_builtin_font");
    test_line_chart_log_axis(builtin);
    test_font_override();
    test_bad_charts(font);
    test_spec_errors();
    test_spec_draws(font);
    test_cli(argv[1], argv[2]);
    plot_font_free(font);
    plot_font_free(builtin);
    const char *keep = getenv("TEST_PLOT_KEEP");
    if (keep && *keep)
        printf("test_plot: the images are in %s\n", work_dir);
    else
        remove_work_dir();
    return check_finish("test_plot");
}
