/*
 * gpt2 analyze similarity: how alike the K and V projections of different layers are. For each
 * layer, K is c_attn.weight's columns [C, 2C) and V its columns [2C, 3C) (Conv1D [in, out]
 * layout, the weight is [C, 3C]); the cosine similarity of the flattened [C, C] matrices of
 * every pair of layers, in double, shows whether layers could share one KV projection. Weights
 * only: biases are left out and no activations are computed.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/checkpoint.h"
#include "model/json.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/result.h"
#include "tools/result_charts.h"

#define CMD "analyze"
#define DEFAULT_OUT_DIR "analyze-similarity"
#define ROW_BLOCK 16     /* weight rows of every layer converted to fp32 at a time */
#define MAX_X_TICKS 13   /* labelled layers on the adjacent-layers chart */

static const char help[] =
    "usage: gpt2 analyze similarity [-m DIR] [-o OUT_DIR] [--json]\n"
    "  cosine similarity between the K projection weights of every pair of layers, and between\n"
    "  their V projection weights: c_attn.weight columns [C, 2C) and [2C, 3C), each flattened,\n"
    "  biases left out. Values near 0 say that the layers' projections are unrelated: one reason\n"
    "  why sharing KV across the layers of a pretrained model fails.\n"
    "  -m DIR             model folder (default: $GPT2_MODEL, else weights/default or\n"
    "                     weights/gpt2)\n"
    "  -o OUT_DIR         where the results go, created when missing (default: ./" DEFAULT_OUT_DIR
    ")\n"
    "                     similarity.json (run record, matrices, chart specs), similarity.csv,\n"
    "                     similarity_k.png, similarity_v.png, similarity_adjacent.png\n"
    "  --json             print similarity.json on stdout instead of the summary\n"
    "  `gpt2 plot OUT_DIR/similarity.json` redraws the charts.";

typedef struct {
    const char *model_dir_flag, *out_dir;
    bool json;
} analyze_options;

/* Returns 0 to run, 1 for an error already printed, 2 when help was printed. */
static int parse_options(int argc, char **argv, analyze_options *opt) {
    *opt = (analyze_options){.out_dir = DEFAULT_OUT_DIR};
    if (argc > 0 && (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0)) {
        puts(help);
        return 2;
    }
    if (argc == 0) return cli_error(CMD, "missing analysis: similarity (see gpt2 analyze --help)");
    if (strcmp(argv[0], "similarity") != 0)
        return cli_error(CMD, "unknown analysis '%s' (expected similarity)", argv[0]);
    cli_args args = {.cmd = CMD, .argc = argc, .argv = argv, .next = 1};
    while (cli_has_next(&args)) {
        if (cli_flag(&args, "-h") || cli_flag(&args, "--help")) {
            puts(help);
            return 2;
        } else if (cli_flag(&args, "-m")) {
            opt->model_dir_flag = cli_value(&args);
        } else if (cli_flag(&args, "-o")) {
            opt->out_dir = cli_value(&args);
        } else if (cli_flag(&args, "--json")) {
            opt->json = true;
        } else {
            return cli_unknown(&args);
        }
    }
    return args.failed ? 1 : 0;
}

/* ---- the similarity matrices ---- */

typedef struct {
    int n_layer;
    double *k; /* [n_layer, n_layer] cosine of layer a's and b's K; NaN for an all-zero matrix */
    double *v; /* [n_layer, n_layer] the same for V */
} layer_similarity;

/* Bytes per element of a checkpoint dtype (model/checkpoint.h has no such helper). */
static size_t checkpoint_dtype_size(gpt2_dtype dtype) {
    switch (dtype) {
    case GPT2_F32: return 4;
    case GPT2_F16: return 2;
    case GPT2_BF16: return 2;
    }
    return 0; /* not a gpt2_dtype: -Wswitch flags a new one left out above */
}

/* Rows [first, first + count) of a 2-D tensor, as a view into the same mapping. */
static gpt2_tensor tensor_rows(const gpt2_tensor *t, int64_t first, int64_t count) {
    size_t element_size = checkpoint_dtype_size(t->dtype);
    gpt2_tensor rows = *t;
    rows.data = (const unsigned char *)t->data + (size_t)(first * t->shape[1]) * element_size;
    rows.shape[0] = count;
    rows.numel = count * t->shape[1];
    return rows;
}

static double dot_f64(const float *x, const float *y, size_t n) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += (double)x[i] * (double)y[i];
    return sum;
}

/*
 * Adds the K and V parts of count weight rows to the dot products k_dot[a * L + b] = <K_a, K_b>
 * (and v_dot) of every pair a <= b.
 */
static void accumulate_dots(const float *rows /* [L, count, 3C] */, int n_layer, int count,
                            int C, double *k_dot /* [L, L] */, double *v_dot /* [L, L] */) {
    size_t row_len = 3 * (size_t)C, layer_len = (size_t)count * row_len;
#pragma omp parallel for schedule(dynamic)
    for (int a = 0; a < n_layer; a++)
        for (int b = a; b < n_layer; b++)
            for (int r = 0; r < count; r++) {
                const float *ra = rows + a * layer_len + r * row_len;
                const float *rb = rows + b * layer_len + r * row_len;
                k_dot[a * n_layer + b] += dot_f64(ra + C, rb + C, (size_t)C);
                v_dot[a * n_layer + b] += dot_f64(ra + 2 * C, rb + 2 * C, (size_t)C);
            }
}

/* Turns the upper triangle of dot products into the full, symmetric matrix of cosines. */
static void dots_to_cosines(double *m /* [L, L] */, int n_layer) {
    for (int a = 0; a < n_layer; a++)
        for (int b = a + 1; b < n_layer; b++) {
            double norms = m[a * n_layer + a] * m[b * n_layer + b];
            double cosine = norms > 0 ? m[a * n_layer + b] / sqrt(norms) : NAN;
            m[a * n_layer + b] = m[b * n_layer + a] = cosine;
        }
    for (int a = 0; a < n_layer; a++) m[a * n_layer + a] = m[a * n_layer + a] > 0 ? 1.0 : NAN;
}

static void layer_similarity_free(layer_similarity *s) {
    free(s->k);
    free(s->v);
    *s = (layer_similarity){0};
}

/* Computes the K and V similarity of every pair of layers. Returns 0, or 1 after the error. */
static int layer_similarity_compute(const gpt2_checkpoint *ckpt, layer_similarity *s) {
    int L = ckpt->config.n_layer, C = ckpt->config.n_embd;
    size_t block_len = (size_t)ROW_BLOCK * 3 * (size_t)C;
    *s = (layer_similarity){.n_layer = L,
                            .k = calloc((size_t)L * L, sizeof(double)),
                            .v = calloc((size_t)L * L, sizeof(double))};
    float *rows = malloc((size_t)L * block_len * sizeof(float)); /* [L, ROW_BLOCK, 3C] */
    if (!s->k || !s->v || !rows) {
        free(rows);
        layer_similarity_free(s);
        return cli_error(CMD, "out of memory for %d layers of width %d", L, C);
    }
    for (int first = 0; first < C; first += ROW_BLOCK) {
        int count = C - first < ROW_BLOCK ? C - first : ROW_BLOCK;
        for (int l = 0; l < L; l++) {
            gpt2_tensor block = tensor_rows(&ckpt->layers[l].attn_w, first, count);
            gpt2_tensor_to_f32(&block, rows + (size_t)l * count * 3 * C);
        }
        accumulate_dots(rows, L, count, C, s->k, s->v);
    }
    free(rows);
    dots_to_cosines(s->k, L);
    dots_to_cosines(s->v, L);
    return 0;
}

/* ---- summaries ---- */

/* Over the pairs of different layers (a < b); NaN (max_a = -1) with fewer than two layers. */
typedef struct {
    double mean, mean_abs, max;
    int max_a, max_b;         /* the pair with the largest cosine */
    double mean_abs_adjacent; /* over the pairs (l, l + 1) */
} off_diagonal_stats;

static off_diagonal_stats off_diagonal(const double *m, int n_layer) {
    off_diagonal_stats s = {.max = NAN, .max_a = -1, .max_b = -1};
    double sum = 0, sum_abs = 0, sum_adjacent = 0;
    for (int a = 0; a < n_layer; a++)
        for (int b = a + 1; b < n_layer; b++) {
            double c = m[a * n_layer + b];
            sum += c;
            sum_abs += fabs(c);
            if (b == a + 1) sum_adjacent += fabs(c);
            if (s.max_a < 0 || c > s.max) {
                s.max = c;
                s.max_a = a;
                s.max_b = b;
            }
        }
    double pairs = n_layer * (n_layer - 1) / 2.0;
    s.mean = pairs > 0 ? sum / pairs : NAN;
    s.mean_abs = pairs > 0 ? sum_abs / pairs : NAN;
    s.mean_abs_adjacent = n_layer > 1 ? sum_adjacent / (n_layer - 1) : NAN;
    return s;
}

/* ---- the result JSON ---- */

typedef struct {
    const char *model_dir;
    gpt2_config config;
    layer_similarity sim;
    off_diagonal_stats k_stats, v_stats;
    char subtitle[512];
} similarity_result;

static void write_matrix(result_writer *w, const double *m, int n) {
    result_begin_array(w);
    for (int row = 0; row < n; row++) result_number_array(w, m + (size_t)row * n, (size_t)n);
    result_end_array(w);
}

static void write_layer_labels(result_writer *w, int n_layer) {
    result_begin_array(w);
    for (int l = 0; l < n_layer; l++) {
        char label[16];
        snprintf(label, sizeof label, "%d", l);
        result_string(w, label);
    }
    result_end_array(w);
}

/* |cosine| of each layer l with layer l + 1, for l in [0, n_layer - 1). */
static void write_adjacent(result_writer *w, const double *m, int n_layer) {
    result_begin_array(w);
    for (int l = 0; l + 1 < n_layer; l++) result_number(w, fabs(m[l * n_layer + l + 1]));
    result_end_array(w);
}

static void write_stats(result_writer *w, const off_diagonal_stats *s) {
    result_begin_object(w);
    result_member_number(w, "mean_off_diagonal", s->mean);
    result_member_number(w, "mean_abs_off_diagonal", s->mean_abs);
    result_member_number(w, "max_off_diagonal", s->max);
    result_key(w, "max_pair");
    if (s->max_a < 0) {
        result_null(w);
    } else {
        result_begin_array(w);
        result_int(w, s->max_a);
        result_int(w, s->max_b);
        result_end_array(w);
    }
    result_member_number(w, "mean_abs_adjacent", s->mean_abs_adjacent);
    result_end_object(w);
}

static void write_heatmap_chart(result_writer *w, const similarity_result *r, const char *file,
                                const char *title, const double *m) {
    result_begin_object(w);
    result_member_string(w, "file", file);
    result_member_string(w, "kind", "heatmap");
    result_member_string(w, "title", title);
    result_member_string(w, "subtitle", r->subtitle);
    result_member_string(w, "x_label", "layer");
    result_member_string(w, "y_label", "layer");
    result_member_string(w, "z_label", "cosine similarity");
    result_member_number(w, "z_min", -1);
    result_member_number(w, "z_max", 1);
    result_key(w, "row_labels");
    write_layer_labels(w, r->sim.n_layer);
    result_key(w, "col_labels");
    write_layer_labels(w, r->sim.n_layer);
    result_key(w, "matrix");
    write_matrix(w, m, r->sim.n_layer);
    result_end_object(w);
}

static void write_adjacent_series(result_writer *w, const char *name, const double *m,
                                  int n_layer) {
    result_begin_object(w);
    result_member_string(w, "name", name);
    result_key(w, "x");
    result_begin_array(w);
    for (int l = 0; l + 1 < n_layer; l++) result_int(w, l);
    result_end_array(w);
    result_key(w, "y");
    write_adjacent(w, m, n_layer);
    result_end_object(w);
}

static void write_reference_line(result_writer *w, double y, const char *label) {
    result_begin_object(w);
    result_member_number(w, "y", y);
    result_member_string(w, "label", label);
    result_end_object(w);
}

/* The adjacent-layers line chart; needs at least two layers. */
static void write_adjacent_chart(result_writer *w, const similarity_result *r) {
    int n_layer = r->sim.n_layer, stride = (n_layer - 2) / MAX_X_TICKS + 1;
    result_begin_object(w);
    result_member_string(w, "file", "similarity_adjacent.png");
    result_member_string(w, "kind", "line");
    result_member_string(w, "title",
                         "Similarity of each layer's K and V weights to the next layer's");
    result_member_string(w, "subtitle", r->subtitle);
    result_member_string(w, "x_label", "layer l (compared with layer l + 1)");
    result_member_string(w, "y_label", "|cosine similarity|");
    result_key(w, "x_ticks");
    result_begin_array(w);
    for (int l = 0; l + 1 < n_layer; l += stride) result_int(w, l);
    result_end_array(w);
    result_key(w, "series");
    result_begin_array(w);
    write_adjacent_series(w, "K", r->sim.k, n_layer);
    write_adjacent_series(w, "V", r->sim.v, n_layer);
    result_end_array(w);
    result_key(w, "reference_lines");
    result_begin_array(w);
    write_reference_line(w, r->k_stats.mean_abs, "K: mean |cosine| of all pairs of layers");
    write_reference_line(w, r->v_stats.mean_abs, "V: mean |cosine| of all pairs of layers");
    result_end_array(w);
    result_end_object(w);
}

static void write_result(result_writer *w, const similarity_result *r, int argc, char **argv) {
    int n_layer = r->sim.n_layer;
    result_begin_object(w);
    result_member_string(w, "analysis", "similarity");
    result_member_string(w, "description",
                         "cosine similarity between the K projection weights of every pair of "
                         "layers, and between their V projection weights: c_attn.weight columns "
                         "[C, 2C) and [2C, 3C), each flattened, biases left out, computed in "
                         "double; null where a matrix is all zero");
    result_key(w, "run");
    result_write_run_info(w, CMD, argc, argv);
    result_key(w, "model");
    result_begin_object(w);
    result_member_string(w, "dir", r->model_dir);
    result_member_int(w, "n_layer", r->config.n_layer);
    result_member_int(w, "n_head", r->config.n_head);
    result_member_int(w, "n_embd", r->config.n_embd);
    result_end_object(w);
    result_key(w, "k_cosine");
    write_matrix(w, r->sim.k, n_layer);
    result_key(w, "v_cosine");
    write_matrix(w, r->sim.v, n_layer);
    result_key(w, "adjacent_abs_cosine");
    result_begin_object(w);
    result_key(w, "k");
    write_adjacent(w, r->sim.k, n_layer);
    result_key(w, "v");
    write_adjacent(w, r->sim.v, n_layer);
    result_end_object(w);
    result_key(w, "summary");
    result_begin_object(w);
    result_key(w, "k");
    write_stats(w, &r->k_stats);
    result_key(w, "v");
    write_stats(w, &r->v_stats);
    result_end_object(w);
    result_key(w, "charts");
    result_begin_array(w);
    write_heatmap_chart(w, r, "similarity_k.png",
                        "Cosine similarity of the K projection weights of every pair of layers",
                        r->sim.k);
    write_heatmap_chart(w, r, "similarity_v.png",
                        "Cosine similarity of the V projection weights of every pair of layers",
                        r->sim.v);
    if (n_layer > 1) write_adjacent_chart(w, r);
    result_end_array(w);
    result_end_object(w);
}

/* ---- output files ---- */

/* dir/name, malloc'd; NULL after printing that memory ran out. */
static char *path_in(const char *dir, const char *name) {
    size_t len = strlen(dir) + strlen(name) + 2;
    char *path = malloc(len);
    if (!path) cli_error(CMD, "out of memory");
    else snprintf(path, len, "%s/%s", dir, name);
    return path;
}

static int save_json(const char *path, const similarity_result *r, int argc, char **argv) {
    FILE *f = fopen(path, "w");
    if (!f) return cli_error(CMD, "%s: %s", path, strerror(errno));
    result_writer w;
    result_writer_init(&w, f);
    write_result(&w, r, argc, argv);
    int rc = result_writer_finish(&w);
    if (fclose(f) != 0) rc = -1;
    return rc == 0 ? 0 : cli_error(CMD, "%s: cannot write the result", path);
}

/* One row per ordered pair of layers, in the JSON's number format (empty for null). */
static int save_csv(const char *path, const layer_similarity *s) {
    FILE *f = fopen(path, "w");
    if (!f) return cli_error(CMD, "%s: %s", path, strerror(errno));
    fputs("layer_a,layer_b,k_cosine,v_cosine\n", f);
    for (int a = 0; a < s->n_layer; a++)
        for (int b = 0; b < s->n_layer; b++) {
            char k[RESULT_NUMBER_LEN], v[RESULT_NUMBER_LEN];
            size_t i = (size_t)a * s->n_layer + b;
            fprintf(f, "%d,%d,%s,%s\n", a, b, result_format_number(s->k[i], k),
                    result_format_number(s->v[i], v));
        }
    bool failed = ferror(f) != 0;
    if (fclose(f) != 0) failed = true;
    return failed ? cli_error(CMD, "%s: cannot write the CSV", path) : 0;
}

/*
 * Reads the saved JSON back and draws its charts from it, as `gpt2 plot` would, so the PNGs match
 * a later redraw byte for byte; prints the JSON on stdout when asked, else lists the PNGs there.
 */
static int draw_saved_charts(const char *json_path, const char *out_dir, bool print_json) {
    size_t len = 0;
    char *text = cli_read_text(CMD, NULL, json_path, &len);
    if (!text) return 1;
    char err[256];
    json_document *doc = json_parse(text, len, err, sizeof err);
    int rc = doc ? result_draw_charts(CMD, json_path, json_root(doc), out_dir,
                                      print_json ? NULL : stdout)
                 : cli_error(CMD, "%s: %s", json_path, err);
    if (rc == 0 && print_json) fwrite(text, 1, len, stdout);
    json_free(doc);
    free(text);
    return rc;
}

/* Writes similarity.json, similarity.csv and the charts into out_dir, which exists. */
static int save_outputs(const char *out_dir, const similarity_result *r, bool print_json,
                        int argc, char **argv) {
    char *json_path = path_in(out_dir, "similarity.json");
    char *csv_path = path_in(out_dir, "similarity.csv");
    int rc = !json_path || !csv_path ? 1 : save_json(json_path, r, argc, argv);
    if (rc == 0) rc = save_csv(csv_path, &r->sim);
    if (rc == 0 && !print_json) printf("%s\n%s\n", json_path, csv_path);
    if (rc == 0) rc = draw_saved_charts(json_path, out_dir, print_json);
    free(json_path);
    free(csv_path);
    return rc;
}

/* ---- the summary table ---- */

static void print_value(double value) {
    if (isnan(value)) printf("%17s", "n/a");
    else printf("%17.4f", value);
}

static void print_stats_row(const char *name, const off_diagonal_stats *s) {
    printf("%-3s", name);
    print_value(s->mean);
    print_value(s->mean_abs);
    print_value(s->max);
    if (s->max_a >= 0) printf(" (%2d,%2d)", s->max_a, s->max_b);
    else printf("        ");
    print_value(s->mean_abs_adjacent);
    putchar('\n');
}

static void print_summary(const similarity_result *r) {
    printf("cosine similarity of the K and V projection weights between the %d layers of %s\n"
           "(c_attn.weight, [%d, %d] per projection, biases left out; off-diagonal: pairs of "
           "different layers)\n",
           r->config.n_layer, r->model_dir, r->config.n_embd, r->config.n_embd);
    printf("%-3s%17s%17s%25s%17s\n", "", "mean", "mean |cos|", "max (layers)", "mean |adjacent|");
    print_stats_row("K", &r->k_stats);
    print_stats_row("V", &r->v_stats);
}

int cmd_analyze(int argc, char **argv) {
    analyze_options opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc) return rc == 2 ? 0 : rc;
    const char *model_dir = cli_model_dir(CMD, opt.model_dir_flag);
    if (!model_dir) return 1;
    char err[GPT2_ERR_LEN];
    gpt2_checkpoint ckpt;
    if (gpt2_checkpoint_open(&ckpt, model_dir, err, sizeof err) != 0)
        return cli_error(CMD, "%s", err);
    /* The output folder before any work or output: a bad -o fails at once, with nothing printed. */
    if (cli_make_folders(opt.out_dir) != 0) {
        rc = cli_error(CMD, "cannot create %s: %s", opt.out_dir, strerror(errno));
        gpt2_checkpoint_close(&ckpt);
        return rc;
    }
    similarity_result r = {.model_dir = model_dir, .config = ckpt.config};
    rc = layer_similarity_compute(&ckpt, &r.sim);
    gpt2_checkpoint_close(&ckpt);
    if (rc != 0) return rc;
    r.k_stats = off_diagonal(r.sim.k, r.sim.n_layer);
    r.v_stats = off_diagonal(r.sim.v, r.sim.n_layer);
    snprintf(r.subtitle, sizeof r.subtitle,
             "%s: c_attn weights (biases left out), not activations; %d layers, C = %d",
             model_dir, r.config.n_layer, r.config.n_embd);
    if (!opt.json) print_summary(&r);
    rc = save_outputs(opt.out_dir, &r, opt.json, argc, argv);
    layer_similarity_free(&r.sim);
    return rc;
}
