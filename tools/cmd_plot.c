/* gpt2 plot: redraws the charts embedded in a saved result JSON as PNG files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/json.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/plot.h"

static const char help[] =
    "usage: gpt2 plot RESULT.json [-o OUT_DIR]\n"
    "  draws every chart in RESULT.json's \"charts\" array as a PNG and prints each path written\n"
    "  -o OUT_DIR         where the PNGs go (created when missing); default: RESULT.json's folder\n"
    "  each chart is a spec with a \"file\" name and a \"kind\" (line, bar, heatmap, roofline);\n"
    "  tools/plot.h documents the fields. $GPT2_FONT names the TrueType font to use.";

typedef struct {
    const char *result_path, *out_dir;
} plot_options;

/* Returns 0 to run, 1 for an error already printed, 2 when help was printed. */
static int parse_options(int argc, char **argv, plot_options *opt) {
    *opt = (plot_options){0};
    cli_args args = {.cmd = "plot", .argc = argc, .argv = argv};
    while (cli_has_next(&args)) {
        const char *arg = argv[args.next];
        if (cli_flag(&args, "-h") || cli_flag(&args, "--help")) {
            puts(help);
            return 2;
        } else if (cli_flag(&args, "-o")) {
            opt->out_dir = cli_value(&args);
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return cli_unknown(&args);
        } else if (opt->result_path) {
            return cli_error("plot", "one result file at a time ('%s' and '%s')", opt->result_path,
                             arg);
        } else {
            opt->result_path = argv[args.next++];
        }
    }
    if (args.failed) return 1;
    if (!opt->result_path) return cli_error("plot", "missing RESULT.json (see gpt2 plot --help)");
    return 0;
}

/* The folder of path ("." when it has none); malloc'd, NULL when out of memory. */
static char *folder_of(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t len = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *folder = malloc(len + 1);
    if (!folder) return NULL;
    memcpy(folder, slash ? path : ".", len);
    folder[len] = '\0';
    return folder;
}

/* mkdir -p. Returns 0, or -1 with errno set. */
static int make_folders(const char *path) {
    size_t len = strlen(path);
    char *partial = malloc(len + 1);
    if (!partial) return -1;
    int rc = 0;
    for (size_t i = 1; i <= len && rc == 0; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        memcpy(partial, path, i);
        partial[i] = '\0';
        if (mkdir(partial, 0777) != 0 && errno != EEXIST) rc = -1;
    }
    struct stat st;
    if (rc == 0 && stat(path, &st) != 0) rc = -1;
    if (rc == 0 && !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        rc = -1;
    }
    int saved = errno;
    free(partial);
    errno = saved;
    return rc;
}

/* A chart's file must be a plain name ending in .png, so that it lands in the output folder. */
static bool valid_file_name(const char *name) {
    size_t len = strlen(name);
    if (len <= 4 || strcmp(name + len - 4, ".png") != 0 || name[0] == '.') return false;
    for (const char *p = name; *p; p++)
        if (*p == '/' || *p == '\\' || (unsigned char)*p < 0x20) return false;
    return true;
}

/* Reads every chart spec of the result. Returns 0, or 1 after printing the first problem. */
static int read_charts(const char *path, const json_value *root, plot_spec **specs, size_t *n) {
    const json_value *charts = json_object_get(root, "charts");
    *specs = NULL;
    *n = 0;
    if (root->type != JSON_OBJECT)
        return cli_error("plot", "%s: expected an object with \"charts\", not %s", path,
                         json_type_name(root->type));
    if (!charts || charts->type != JSON_ARRAY || json_length(charts) == 0)
        return cli_error("plot", "%s: no \"charts\" array with at least one chart", path);
    *specs = calloc(json_length(charts), sizeof **specs);
    if (!*specs) return cli_error("plot", "out of memory");
    for (size_t i = 0; i < json_length(charts); i++) {
        char err[512];
        plot_spec *spec = &(*specs)[i];
        if (plot_spec_parse(json_array_at(charts, i), spec, err, sizeof err) != 0)
            return cli_error("plot", "%s: charts[%zu]: %s", path, i, err);
        *n = i + 1;
        if (!spec->file) return cli_error("plot", "%s: charts[%zu].file: missing", path, i);
        char printable[128];
        json_printable(spec->file, strlen(spec->file), printable, sizeof printable);
        if (!valid_file_name(spec->file))
            return cli_error("plot", "%s: charts[%zu].file: '%s' is not a file name ending in .png",
                             path, i, printable);
        for (size_t k = 0; k < i; k++)
            if (strcmp((*specs)[k].file, spec->file) == 0)
                return cli_error("plot",
                                 "%s: charts[%zu].file: '%s' is also the file of charts[%zu]", path,
                                 i, printable, k);
    }
    return 0;
}

/* Draws each chart into out_dir and prints its path. */
static int draw_charts(const plot_spec *specs, size_t n, const char *out_dir) {
    char note[256];
    plot_font *font = plot_font_load(note, sizeof note);
    if (!font) return cli_error("plot", "out of memory");
    if (note[0]) fprintf(stderr, "gpt2 plot: warning: %s\n", note);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t len = strlen(out_dir) + strlen(specs[i].file) + 2;
        char *path = malloc(len), err[512];
        if (!path) {
            rc = cli_error("plot", "out of memory");
            break;
        }
        snprintf(path, len, "%s/%s", out_dir, specs[i].file);
        if (plot_chart_write_png(&specs[i].chart, font, path, NULL, err, sizeof err) == 0)
            puts(path);
        else
            rc = cli_error("plot", "charts[%zu] (%s): %s", i, specs[i].file, err);
        free(path);
    }
    plot_font_free(font);
    return rc;
}

int cmd_plot(int argc, char **argv) {
    plot_options opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc) return rc == 2 ? 0 : rc;
    size_t len = 0;
    char *text = cli_read_text("plot", NULL, opt.result_path, &len);
    if (!text) return 1;
    char err[256];
    json_document *doc = json_parse(text, len, err, sizeof err);
    plot_spec *specs = NULL;
    size_t n = 0;
    char *out_dir = opt.out_dir ? NULL : folder_of(opt.result_path);
    if (!doc)
        rc = cli_error("plot", "%s: %s", opt.result_path, err);
    else if (!opt.out_dir && !out_dir)
        rc = cli_error("plot", "out of memory");
    else
        rc = read_charts(opt.result_path, json_root(doc), &specs, &n);
    if (rc == 0 && opt.out_dir && make_folders(opt.out_dir) != 0)
        rc = cli_error("plot", "cannot create %s: %s", opt.out_dir, strerror(errno));
    if (rc == 0) rc = draw_charts(specs, n, opt.out_dir ? opt.out_dir : out_dir);
    for (size_t i = 0; i < n; i++) plot_spec_free(&specs[i]);
    free(specs);
    free(out_dir);
    json_free(doc);
    free(text);
    return rc;
}
