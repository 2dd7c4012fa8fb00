/*
 * libFuzzer harness for the result JSON that `gpt2 plot` reads back (tools/cmd_plot.c): the JSON
 * parser, then every chart spec of its "charts" array (or the root itself, when it is one spec)
 * through plot_spec_parse, and each chart that parses drawn with the built-in font into a small
 * PNG on /dev/null, so that hostile numbers (NaN, 1e308, empty series, log axes over negatives)
 * reach the layout and drawing code. A failed spec must leave one error line and an empty spec.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/json.h"
#include "tools/plot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const plot_font *font(void) {
    static plot_font *builtin;
    if (!builtin) builtin = plot_font_builtin();
    if (!builtin) abort();
    return builtin;
}

static void check_chart(const json_value *v) {
    plot_spec spec;
    char err[512] = "";
    if (plot_spec_parse(v, &spec, err, sizeof err) != 0) {
        if (err[0] == '\0' || strchr(err, '\n') || spec.arena || spec.file) abort();
        return;
    }
    /* Small, so that each input draws in milliseconds; the size checks are plot_spec_parse's. */
    if (spec.chart.width < PLOT_MIN_SIZE && spec.chart.width != 0) abort();
    if (spec.chart.height < PLOT_MIN_SIZE && spec.chart.height != 0) abort();
    spec.chart.width = PLOT_MIN_SIZE + spec.chart.width % 64;
    spec.chart.height = PLOT_MIN_SIZE + spec.chart.height % 64;
    err[0] = '\0';
    if (plot_chart_write_png(&spec.chart, font(), "/dev/null", NULL, err, sizeof err) != 0 &&
        (err[0] == '\0' || strchr(err, '\n')))
        abort();
    plot_spec_free(&spec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256] = "";
    json_document *doc = json_parse((const char *)data, size, err, sizeof err);
    if (!doc) return 0;
    const json_value *root = json_root(doc);
    const json_value *charts = json_object_get(root, "charts");
    if (charts && charts->type == JSON_ARRAY) {
        for (size_t i = 0; i < json_length(charts) && i < 4; i++) check_chart(json_array_at(charts, i));
    } else {
        check_chart(root);
    }
    json_free(doc);
    return 0;
}
