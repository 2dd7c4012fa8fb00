/* gpt2 plot: redraws the charts embedded in a saved result JSON as PNG files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/json.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/result_charts.h"

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

int cmd_plot(int argc, char **argv) {
    plot_options opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc) return rc == 2 ? 0 : rc;
    size_t len = 0;
    char *text = cli_read_text("plot", NULL, opt.result_path, &len);
    if (!text) return 1;
    char err[256];
    json_document *doc = json_parse(text, len, err, sizeof err);
    char *out_dir = opt.out_dir ? NULL : folder_of(opt.result_path);
    if (!doc)
        rc = cli_error("plot", "%s: %s", opt.result_path, err);
    else if (!opt.out_dir && !out_dir)
        rc = cli_error("plot", "out of memory");
    else if (opt.out_dir && cli_make_folders(opt.out_dir) != 0)
        rc = cli_error("plot", "cannot create %s: %s", opt.out_dir, strerror(errno));
    else
        rc = result_draw_charts("plot", opt.result_path, json_root(doc),
                                opt.out_dir ? opt.out_dir : out_dir, stdout);
    free(out_dir);
    json_free(doc);
    free(text);
    return rc;
}
