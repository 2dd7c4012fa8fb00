/* The charts a result file embeds, drawn as PNGs: tools/result_charts.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"
#include "tools/plot.h"
#include "tools/result_charts.h"

/* A chart's file must be a plain name ending in .png, so that it lands in the output folder. */
static bool valid_file_name(const char *name) {
    size_t len = strlen(name);
    if (len <= 4 || strcmp(name + len - 4, ".png") != 0 || name[0] == '.') return false;
    for (const char *p = name; *p; p++)
        if (*p == '/' || *p == '\\' || (unsigned char)*p < 0x20) return false;
    return true;
}

/* Reads every chart spec of the result. Returns 0, or 1 after printing the first problem. */
static int read_charts(const char *cmd, const char *path, const json_value *root,
                       plot_spec **specs, size_t *n) {
    const json_value *charts = json_object_get(root, "charts");
    *specs = NULL;
    *n = 0;
    if (root->type != JSON_OBJECT)
        return cli_error(cmd, "%s: expected an object with \"charts\", not %s", path,
                         json_type_name(root->type));
    if (!charts || charts->type != JSON_ARRAY || json_length(charts) == 0)
        return cli_error(cmd, "%s: no \"charts\" array with at least one chart", path);
    *specs = calloc(json_length(charts), sizeof **specs);
    if (!*specs) return cli_error(cmd, "out of memory");
    for (size_t i = 0; i < json_length(charts); i++) {
        char err[512];
        plot_spec *spec = &(*specs)[i];
        if (plot_spec_parse(json_array_at(charts, i), spec, err, sizeof err) != 0)
            return cli_error(cmd, "%s: charts[%zu]: %s", path, i, err);
        *n = i + 1;
        if (!spec->file) return cli_error(cmd, "%s: charts[%zu].file: missing", path, i);
        char printable[128];
        json_printable(spec->file, strlen(spec->file), printable, sizeof printable);
        if (!valid_file_name(spec->file))
            return cli_error(cmd, "%s: charts[%zu].file: '%s' is not a file name ending in .png",
                             path, i, printable);
        for (size_t k = 0; k < i; k++)
            if (strcmp((*specs)[k].file, spec->file) == 0)
                return cli_error(cmd, "%s: charts[%zu].file: '%s' is also the file of charts[%zu]",
                                 path, i, printable, k);
    }
    return 0;
}

/* Draws each chart into out_dir and lists its path. */
static int draw_charts(const char *cmd, const plot_spec *specs, size_t n, const char *out_dir,
                       FILE *list) {
    char note[256];
    plot_font *font = plot_font_load(note, sizeof note);
    if (!font) return cli_error(cmd, "out of memory");
    if (note[0]) fprintf(stderr, "gpt2 %s: warning: %s\n", cmd, note);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t len = strlen(out_dir) + strlen(specs[i].file) + 2;
        char *path = malloc(len), err[512];
        if (!path) {
            rc = cli_error(cmd, "out of memory");
            break;
        }
        snprintf(path, len, "%s/%s", out_dir, specs[i].file);
        if (plot_chart_write_png(&specs[i].chart, font, path, NULL, err, sizeof err) != 0)
            rc = cli_error(cmd, "charts[%zu] (%s): %s", i, specs[i].file, err);
        else if (list)
            fprintf(list, "%s\n", path);
        free(path);
    }
    plot_font_free(font);
    return rc;
}

int result_draw_charts(const char *cmd, const char *path, const json_value *root,
                       const char *out_dir, FILE *list) {
    plot_spec *specs;
    size_t n;
    int rc = read_charts(cmd, path, root, &specs, &n);
    if (rc == 0) rc = draw_charts(cmd, specs, n, out_dir, list);
    for (size_t i = 0; i < n; i++) plot_spec_free(&specs[i]);
    free(specs);
    return rc;
}
