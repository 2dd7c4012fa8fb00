/* Chart specs in JSON (documented in tools/plot.h) read into plot_chart, checking every field. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/plot.h"

/* Every allocation of a spec, freed together. */
struct plot_arena_block {
    struct plot_arena_block *next;
    max_align_t data[];
};

typedef struct {
    plot_spec *spec;
    char *err;
    size_t err_len;
} spec_reader;

/* A field's name in an error: "series[12].y[1024]"; SUBFIELD_LEN for a member of one. */
#define FIELD_LEN 96
#define SUBFIELD_LEN (FIELD_LEN + 32)

static int fail(spec_reader *r, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(spec_reader *r, const char *field, const char *fmt, ...) {
    char message[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    snprintf(r->err, r->err_len, "%s%s%s", field, *field ? ": " : "", message);
    return -1;
}

/* Zeroed memory owned by the spec; NULL (with the error set) when out of memory. */
static void *allocate(spec_reader *r, size_t count, size_t size) {
    bool too_large = count && size > (SIZE_MAX - sizeof(struct plot_arena_block)) / count;
    struct plot_arena_block *block = too_large ? NULL : calloc(1, sizeof *block + count * size);
    if (!block) {
        fail(r, "", "out of memory");
        return NULL;
    }
    block->next = r->spec->arena;
    r->spec->arena = block;
    return block->data;
}

static const char *type_of(const json_value *v) { return json_type_name(v->type); }

/* ---- scalar fields; each returns 0 when the field is absent (leaving *out) or read ---- */

static int read_string(spec_reader *r, const json_value *obj, const char *key, const char **out) {
    const json_value *v = json_object_get(obj, key);
    if (!v) return 0;
    if (!(*out = json_get_string(v, NULL)))
        return fail(r, key, "expected a string, not %s", type_of(v));
    return 0;
}

static int read_bool(spec_reader *r, const json_value *obj, const char *key, bool *out) {
    const json_value *v = json_object_get(obj, key);
    if (v && !json_get_bool(v, out))
        return fail(r, key, "expected true or false, not %s", type_of(v));
    return 0;
}

static int read_size(spec_reader *r, const json_value *obj, const char *key, int *out) {
    const json_value *v = json_object_get(obj, key);
    int64_t size;
    if (!v) return 0;
    if (!json_get_int64(v, &size) || size < PLOT_MIN_SIZE || size > PLOT_MAX_SIZE)
        return fail(r, key, "expected an integer in [%d, %d]", PLOT_MIN_SIZE, PLOT_MAX_SIZE);
    *out = (int)size;
    return 0;
}

/* A number, or NaN for null when allow_null. */
static int read_number_value(spec_reader *r, const json_value *v, const char *field,
                             bool allow_null, double *out) {
    if (allow_null && v->type == JSON_NULL) {
        *out = NAN;
        return 0;
    }
    if (!json_get_double(v, out))
        return fail(r, field, "expected a number%s, not %s", allow_null ? " or null" : "",
                    type_of(v));
    return 0;
}

static int read_number(spec_reader *r, const json_value *obj, const char *key, bool required,
                       double *out) {
    const json_value *v = json_object_get(obj, key);
    if (!v) return required ? fail(r, key, "missing") : 0;
    return read_number_value(r, v, key, false, out);
}

/* ---- arrays ---- */

static int expect_array(spec_reader *r, const json_value *v, const char *field) {
    if (v->type != JSON_ARRAY) return fail(r, field, "expected an array, not %s", type_of(v));
    return 0;
}

/* The items of an array of numbers and nulls (NaN) into out[json_length(v)]. */
static int read_number_items(spec_reader *r, const json_value *v, const char *field, double *out) {
    for (size_t i = 0; i < json_length(v); i++) {
        char item[SUBFIELD_LEN];
        snprintf(item, sizeof item, "%s[%zu]", field, i);
        if (read_number_value(r, json_array_at(v, i), item, true, &out[i])) return -1;
    }
    return 0;
}

static int read_numbers(spec_reader *r, const json_value *v, const char *field, double **out,
                        size_t *n) {
    if (expect_array(r, v, field)) return -1;
    *n = json_length(v);
    if (!(*out = allocate(r, *n, sizeof **out))) return -1;
    return read_number_items(r, v, field, *out);
}

static int read_optional_numbers(spec_reader *r, const json_value *obj, const char *key,
                                 const double **out, size_t *n) {
    const json_value *v = json_object_get(obj, key);
    double *values;
    if (!v) return 0;
    if (read_numbers(r, v, key, &values, n)) return -1;
    *out = values;
    return 0;
}

static int read_strings(spec_reader *r, const json_value *v, const char *field,
                        const char *const **out, size_t *n) {
    if (expect_array(r, v, field)) return -1;
    *n = json_length(v);
    const char **strings = allocate(r, *n, sizeof *strings);
    if (!strings) return -1;
    for (size_t i = 0; i < *n; i++) {
        const json_value *item = json_array_at(v, i);
        if (!(strings[i] = json_get_string(item, NULL)))
            return fail(r, field, "item %zu: expected a string, not %s", i, type_of(item));
    }
    *out = strings;
    return 0;
}

/* The strings of key, which must be one per item of something counted `expected`. */
static int read_labels(spec_reader *r, const json_value *obj, const char *key, size_t expected,
                       const char *what, const char *const **out) {
    const json_value *v = json_object_get(obj, key);
    size_t n;
    if (!v) return 0;
    if (read_strings(r, v, key, out, &n)) return -1;
    if (n != expected) return fail(r, key, "has %zu labels for %zu %s", n, expected, what);
    return 0;
}

/* ---- field names allowed for each kind ---- */

static const char *const kind_names[] = {"line", "bar", "heatmap", "roofline"};

static const char *const common_keys[] = {"kind",    "file",  "title",  "subtitle", "x_label",
                                          "y_label", "width", "height", NULL};
static const char *const line_chart_keys[] = {"series",  "x_log",           "y_log", "x_ticks",
                                              "y_ticks", "reference_lines", NULL};
static const char *const bar_chart_keys[] = {"series",          "categories",   "y_log", "y_ticks",
                                             "reference_lines", "value_labels", NULL};
static const char *const heatmap_chart_keys[] = {"matrix", "row_labels", "col_labels",  "z_min",
                                                 "z_max",  "z_label",    "cell_values", NULL};
static const char *const roofline_chart_keys[] = {"ceilings", "points", "reference_lines", NULL};
static const char *const *const keys_of_kind[] = {line_chart_keys, bar_chart_keys,
                                                  heatmap_chart_keys, roofline_chart_keys};

static bool listed(const char *const *keys, const char *key) {
    for (; *keys; keys++)
        if (strcmp(*keys, key) == 0) return true;
    return false;
}

static int check_chart_keys(spec_reader *r, const json_value *spec, plot_kind kind) {
    for (size_t i = 0; i < spec->as.object.count; i++) {
        const char *key = spec->as.object.members[i].key;
        if (listed(common_keys, key) || listed(keys_of_kind[kind], key)) continue;
        for (size_t k = 0; k < sizeof keys_of_kind / sizeof keys_of_kind[0]; k++)
            if (listed(keys_of_kind[k], key))
                return fail(r, key, "does not apply to %s charts", kind_names[kind]);
        char printable[64];
        return fail(
            r, "", "unknown field '%s'",
            json_printable(key, spec->as.object.members[i].key_len, printable, sizeof printable));
    }
    return 0;
}

/* Rejects members of an object (a series, a point...) other than the listed ones. */
static int check_item_keys(spec_reader *r, const json_value *item, const char *field,
                           const char *const *keys) {
    if (item->type != JSON_OBJECT)
        return fail(r, field, "expected an object, not %s", type_of(item));
    for (size_t i = 0; i < item->as.object.count; i++)
        if (!listed(keys, item->as.object.members[i].key)) {
            char printable[64];
            const json_member *m = &item->as.object.members[i];
            return fail(r, field, "unknown field '%s'",
                        json_printable(m->key, m->key_len, printable, sizeof printable));
        }
    return 0;
}

static int read_kind(spec_reader *r, const json_value *spec, plot_kind *kind) {
    const json_value *v = json_object_get(spec, "kind");
    const char *name = v ? json_get_string(v, NULL) : NULL;
    if (!v) return fail(r, "kind", "missing (line, bar, heatmap or roofline)");
    if (!name) return fail(r, "kind", "expected a string, not %s", type_of(v));
    for (size_t k = 0; k < sizeof kind_names / sizeof kind_names[0]; k++)
        if (strcmp(name, kind_names[k]) == 0) {
            *kind = (plot_kind)k;
            return 0;
        }
    char printable[64];
    return fail(r, "kind", "'%s' is not line, bar, heatmap or roofline",
                json_printable(name, strlen(name), printable, sizeof printable));
}

/* ---- the parts of each kind ---- */

static int read_series(spec_reader *r, const json_value *spec, plot_chart *c) {
    const json_value *v = json_object_get(spec, "series");
    if (!v) return fail(r, "series", "missing");
    if (expect_array(r, v, "series")) return -1;
    c->n_series = json_length(v);
    plot_series *series = allocate(r, c->n_series, sizeof *series);
    if (!series) return -1;
    c->series = series;
    bool bar = c->kind == PLOT_BAR;
    static const char *const keys[] = {"name", "x", "y", NULL};
    static const char *const bar_keys[] = {"name", "y", NULL};
    for (size_t i = 0; i < c->n_series; i++) {
        const json_value *item = json_array_at(v, i);
        char field[FIELD_LEN], sub[SUBFIELD_LEN];
        snprintf(field, sizeof field, "series[%zu]", i);
        if (check_item_keys(r, item, field, bar ? bar_keys : keys)) return -1;
        const json_value *name = json_object_get(item, "name");
        if (name && !(series[i].name = json_get_string(name, NULL)))
            return fail(r, field, "name: expected a string, not %s", type_of(name));
        const json_value *x = json_object_get(item, "x"), *y = json_object_get(item, "y");
        size_t nx = 0, ny = 0;
        double *xs = NULL, *ys = NULL;
        snprintf(sub, sizeof sub, "%s.y", field);
        if (!y) return fail(r, sub, "missing");
        if (read_numbers(r, y, sub, &ys, &ny)) return -1;
        if (!bar) {
            snprintf(sub, sizeof sub, "%s.x", field);
            if (!x) return fail(r, sub, "missing");
            if (read_numbers(r, x, sub, &xs, &nx)) return -1;
            if (nx != ny) return fail(r, field, "x has %zu values but y has %zu", nx, ny);
        } else if (ny != c->n_categories) {
            return fail(r, field, "y has %zu values for %zu categories", ny, c->n_categories);
        }
        series[i].x = xs;
        series[i].y = ys;
        series[i].n = ny;
    }
    return 0;
}

static int read_reference_lines(spec_reader *r, const json_value *spec, plot_chart *c) {
    const json_value *v = json_object_get(spec, "reference_lines");
    if (!v) return 0;
    if (expect_array(r, v, "reference_lines")) return -1;
    c->n_reference_lines = json_length(v);
    plot_reference_line *lines = allocate(r, c->n_reference_lines, sizeof *lines);
    if (!lines) return -1;
    c->reference_lines = lines;
    static const char *const keys[] = {"y", "label", NULL};
    for (size_t i = 0; i < c->n_reference_lines; i++) {
        const json_value *item = json_array_at(v, i);
        char field[FIELD_LEN];
        snprintf(field, sizeof field, "reference_lines[%zu]", i);
        if (check_item_keys(r, item, field, keys)) return -1;
        const json_value *y = json_object_get(item, "y"), *label = json_object_get(item, "label");
        char sub[SUBFIELD_LEN];
        snprintf(sub, sizeof sub, "%s.y", field);
        if (!y) return fail(r, sub, "missing");
        if (read_number_value(r, y, sub, false, &lines[i].y)) return -1;
        if (label && !(lines[i].label = json_get_string(label, NULL)))
            return fail(r, field, "label: expected a string, not %s", type_of(label));
    }
    return 0;
}

static int read_line(spec_reader *r, const json_value *spec, plot_chart *c) {
    if (read_bool(r, spec, "x_log", &c->x_log) || read_bool(r, spec, "y_log", &c->y_log) ||
        read_optional_numbers(r, spec, "x_ticks", &c->x_ticks, &c->n_x_ticks) ||
        read_optional_numbers(r, spec, "y_ticks", &c->y_ticks, &c->n_y_ticks))
        return -1;
    return read_series(r, spec, c) || read_reference_lines(r, spec, c) ? -1 : 0;
}

static int read_bar(spec_reader *r, const json_value *spec, plot_chart *c) {
    const json_value *categories = json_object_get(spec, "categories");
    if (!categories) return fail(r, "categories", "missing");
    if (read_strings(r, categories, "categories", &c->categories, &c->n_categories) ||
        read_bool(r, spec, "y_log", &c->y_log) ||
        read_bool(r, spec, "value_labels", &c->value_labels) ||
        read_optional_numbers(r, spec, "y_ticks", &c->y_ticks, &c->n_y_ticks))
        return -1;
    return read_series(r, spec, c) || read_reference_lines(r, spec, c) ? -1 : 0;
}

static int read_matrix(spec_reader *r, const json_value *spec, plot_chart *c) {
    const json_value *v = json_object_get(spec, "matrix");
    if (!v) return fail(r, "matrix", "missing");
    if (expect_array(r, v, "matrix")) return -1;
    c->rows = json_length(v);
    for (size_t i = 0; i < c->rows; i++) {
        char field[FIELD_LEN];
        snprintf(field, sizeof field, "matrix[%zu]", i);
        const json_value *row = json_array_at(v, i);
        if (expect_array(r, row, field)) return -1;
        if (i == 0 && !(c->cols = json_length(row))) return fail(r, field, "is empty");
        if (json_length(row) != c->cols)
            return fail(r, field, "has %zu values but matrix[0] has %zu", json_length(row),
                        c->cols);
    }
    double *cells = allocate(r, c->rows * c->cols, sizeof *cells);
    if (!cells) return -1;
    for (size_t i = 0; i < c->rows; i++) {
        char field[FIELD_LEN];
        snprintf(field, sizeof field, "matrix[%zu]", i);
        if (read_number_items(r, json_array_at(v, i), field, cells + i * c->cols)) return -1;
    }
    c->matrix = cells;
    return 0;
}

static int read_heatmap(spec_reader *r, const json_value *spec, plot_chart *c) {
    bool cell_values;
    const json_value *show = json_object_get(spec, "cell_values");
    if (read_matrix(r, spec, c) ||
        read_labels(r, spec, "row_labels", c->rows, "rows", &c->row_labels) ||
        read_labels(r, spec, "col_labels", c->cols, "columns", &c->col_labels) ||
        read_number(r, spec, "z_min", false, &c->z_min) ||
        read_number(r, spec, "z_max", false, &c->z_max) ||
        read_string(r, spec, "z_label", &c->z_label) ||
        read_bool(r, spec, "cell_values", &cell_values))
        return -1;
    if (c->z_min > c->z_max) return fail(r, "z_min", "is greater than z_max");
    if (show) c->cell_values = cell_values ? PLOT_CELL_VALUES_ON : PLOT_CELL_VALUES_OFF;
    return 0;
}

static int read_positive(spec_reader *r, const json_value *obj, const char *key, double *out) {
    char field[FIELD_LEN];
    snprintf(field, sizeof field, "ceilings.%s", key);
    const json_value *v = json_object_get(obj, key);
    if (!v) return fail(r, field, "missing");
    if (read_number_value(r, v, field, false, out)) return -1;
    if (!(*out > 0)) return fail(r, field, "must be positive");
    return 0;
}

static int read_ceilings(spec_reader *r, const json_value *spec, plot_chart *c) {
    const json_value *v = json_object_get(spec, "ceilings");
    static const char *const keys[] = {"bandwidth_bytes_per_s", "flops_per_s", "bandwidth_label",
                                       "flops_label", NULL};
    if (!v) return fail(r, "ceilings", "missing");
    if (check_item_keys(r, v, "ceilings", keys) ||
        read_positive(r, v, "bandwidth_bytes_per_s", &c->bandwidth_bytes_per_s) ||
        read_positive(r, v, "flops_per_s", &c->peak_flops_per_s))
        return -1;
    const json_value *bw = json_object_get(v, "bandwidth_label"),
                     *fl = json_object_get(v, "flops_label");
    if (bw && !(c->bandwidth_label = json_get_string(bw, NULL)))
        return fail(r, "ceilings.bandwidth_label", "expected a string, not %s", type_of(bw));
    if (fl && !(c->flops_label = json_get_string(fl, NULL)))
        return fail(r, "ceilings.flops_label", "expected a string, not %s", type_of(fl));
    return 0;
}

static int read_points(spec_reader *r, const json_value *spec, plot_chart *c) {
    const json_value *v = json_object_get(spec, "points");
    if (!v) return fail(r, "points", "missing");
    if (expect_array(r, v, "points")) return -1;
    c->n_points = json_length(v);
    plot_roofline_point *points = allocate(r, c->n_points, sizeof *points);
    if (!points) return -1;
    c->points = points;
    static const char *const keys[] = {"name", "intensity", "flops_per_s", NULL};
    for (size_t i = 0; i < c->n_points; i++) {
        const json_value *item = json_array_at(v, i);
        char field[FIELD_LEN];
        snprintf(field, sizeof field, "points[%zu]", i);
        if (check_item_keys(r, item, field, keys)) return -1;
        const json_value *name = json_object_get(item, "name");
        if (name && !(points[i].name = json_get_string(name, NULL)))
            return fail(r, field, "name: expected a string, not %s", type_of(name));
        static const char *const numbers[] = {"intensity", "flops_per_s"};
        double *targets[] = {&points[i].intensity, &points[i].flops_per_s};
        for (int k = 0; k < 2; k++) {
            const json_value *n = json_object_get(item, numbers[k]);
            char sub[SUBFIELD_LEN];
            snprintf(sub, sizeof sub, "%s.%s", field, numbers[k]);
            if (!n) return fail(r, sub, "missing");
            if (read_number_value(r, n, sub, true, targets[k])) return -1;
        }
    }
    return 0;
}

static int read_roofline(spec_reader *r, const json_value *spec, plot_chart *c) {
    c->x_log = c->y_log = true;
    return read_ceilings(r, spec, c) || read_points(r, spec, c) || read_reference_lines(r, spec, c)
               ? -1
               : 0;
}

static int read_spec(spec_reader *r, const json_value *spec) {
    plot_chart *c = &r->spec->chart;
    if (spec->type != JSON_OBJECT) return fail(r, "", "expected an object, not %s", type_of(spec));
    plot_kind kind = PLOT_LINE;
    if (read_kind(r, spec, &kind) || check_chart_keys(r, spec, kind)) return -1;
    *c = plot_chart_defaults(kind);
    if (read_string(r, spec, "file", &r->spec->file) || read_string(r, spec, "title", &c->title) ||
        read_string(r, spec, "subtitle", &c->subtitle) ||
        read_string(r, spec, "x_label", &c->x_label) ||
        read_string(r, spec, "y_label", &c->y_label) || read_size(r, spec, "width", &c->width) ||
        read_size(r, spec, "height", &c->height))
        return -1;
    switch (kind) {
    case PLOT_LINE: return read_line(r, spec, c);
    case PLOT_BAR: return read_bar(r, spec, c);
    case PLOT_HEATMAP: return read_heatmap(r, spec, c);
    case PLOT_ROOFLINE: return read_roofline(r, spec, c);
    }
    return -1;
}

int plot_spec_parse(const json_value *spec, plot_spec *out, char *err, size_t err_len) {
    *out = (plot_spec){0};
    spec_reader r = {out, err, err_len};
    if (read_spec(&r, spec) == 0) return 0;
    plot_spec_free(out);
    return -1;
}

void plot_spec_free(plot_spec *spec) {
    for (struct plot_arena_block *b = spec->arena, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    *spec = (plot_spec){0};
}
