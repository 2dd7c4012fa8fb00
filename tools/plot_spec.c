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

/* Fields are named in errors by their path: "series[12].y[1024]", "ceilings.flops_per_s". */
#define NAME_LEN 128

/* Writes "name: message" as the error. Returns -1. */
static int fail(spec_reader *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(spec_reader *r, const char *name, const char *fmt, ...) {
    char message[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    snprintf(r->err, r->err_len, "%s%s%s", name, *name ? ": " : "", message);
    return -1;
}

/* The name of member key of the object named parent ("" at the top). */
static const char *member_name(const char *parent, const char *key, char name[NAME_LEN]) {
    snprintf(name, NAME_LEN, "%.*s%s%s", NAME_LEN / 2, parent, *parent ? "." : "", key);
    return name;
}

static const char *item_name(const char *array, size_t index, char name[NAME_LEN]) {
    snprintf(name, NAME_LEN, "%.*s[%zu]", NAME_LEN / 2, array, index);
    return name;
}

static const char *type_of(const json_value *v) { return json_type_name(v->type); }

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

/* ---- members: each reader returns 0 (leaving *out alone when the member is absent) or -1 ---- */

typedef enum { OPTIONAL, REQUIRED } member_presence;

/* The member key of obj in *v (NULL when absent and optional). */
static int get_member(spec_reader *r, const json_value *obj, const char *parent, const char *key,
                      member_presence presence, const json_value **v) {
    char name[NAME_LEN];
    *v = json_object_get(obj, key);
    if (!*v && presence == REQUIRED) return fail(r, member_name(parent, key, name), "missing");
    return 0;
}

static int read_string(spec_reader *r, const json_value *obj, const char *parent, const char *key,
                       const char **out) {
    const json_value *v = json_object_get(obj, key);
    char name[NAME_LEN];
    if (v && !(*out = json_get_string(v, NULL)))
        return fail(r, member_name(parent, key, name), "expected a string, not %s", type_of(v));
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

/* The number v (named name), or NaN for null when allow_null. */
static int number_value(spec_reader *r, const json_value *v, const char *name, bool allow_null,
                        double *out) {
    if (allow_null && v->type == JSON_NULL) {
        *out = NAN;
        return 0;
    }
    if (!json_get_double(v, out))
        return fail(r, name, "expected a number%s, not %s", allow_null ? " or null" : "",
                    type_of(v));
    return 0;
}

static int read_number(spec_reader *r, const json_value *obj, const char *parent, const char *key,
                       member_presence presence, bool allow_null, double *out) {
    const json_value *v;
    char name[NAME_LEN];
    if (get_member(r, obj, parent, key, presence, &v)) return -1;
    return v ? number_value(r, v, member_name(parent, key, name), allow_null, out) : 0;
}

/* The array member key of obj in *v (NULL when absent and optional). */
static int get_array(spec_reader *r, const json_value *obj, const char *parent, const char *key,
                     member_presence presence, const json_value **v) {
    char name[NAME_LEN];
    if (get_member(r, obj, parent, key, presence, v)) return -1;
    if (*v && (*v)->type != JSON_ARRAY)
        return fail(r, member_name(parent, key, name), "expected an array, not %s", type_of(*v));
    return 0;
}

/* The items of the array v (named name), numbers or null (NaN), into out[json_length(v)]. */
static int number_items(spec_reader *r, const json_value *v, const char *name, double *out) {
    char item[NAME_LEN];
    for (size_t i = 0; i < json_length(v); i++)
        if (number_value(r, json_array_at(v, i), item_name(name, i, item), true, &out[i]))
            return -1;
    return 0;
}

static int read_numbers(spec_reader *r, const json_value *obj, const char *parent, const char *key,
                        member_presence presence, const double **out, size_t *n) {
    const json_value *v;
    char name[NAME_LEN];
    if (get_array(r, obj, parent, key, presence, &v)) return -1;
    if (!v) return 0;
    double *values = allocate(r, json_length(v), sizeof *values);
    if (!values || number_items(r, v, member_name(parent, key, name), values)) return -1;
    *out = values;
    *n = json_length(v);
    return 0;
}

static int read_strings(spec_reader *r, const json_value *obj, const char *key,
                        member_presence presence, const char *const **out, size_t *n) {
    const json_value *v;
    char name[NAME_LEN];
    if (get_array(r, obj, "", key, presence, &v)) return -1;
    if (!v) return 0;
    const char **strings = allocate(r, json_length(v), sizeof *strings);
    if (!strings) return -1;
    for (size_t i = 0; i < json_length(v); i++) {
        const json_value *item = json_array_at(v, i);
        if (!(strings[i] = json_get_string(item, NULL)))
            return fail(r, item_name(key, i, name), "expected a string, not %s", type_of(item));
    }
    *out = strings;
    *n = json_length(v);
    return 0;
}

/* Labels under key, which must be one per row (or column) when present. */
static int read_labels(spec_reader *r, const json_value *obj, const char *key, size_t expected,
                       const char *what, const char *const **out) {
    size_t n = expected;
    if (read_strings(r, obj, key, OPTIONAL, out, &n)) return -1;
    if (n != expected) return fail(r, key, "has %zu labels for %zu %s", n, expected, what);
    return 0;
}

/* ---- the members allowed ---- */

static const char *const kind_names[] = {"line", "bar", "heatmap", "roofline"};

static const char *const common_keys[] = {"kind",    "file",  "title",  "subtitle", "x_label",
                                          "y_label", "width", "height", NULL};
static const char *const line_chart_keys[] = {"series",  "x_log",           "y_log", "x_ticks",
                                              "y_ticks", "reference_lines", NULL};
static const char *const bar_chart_keys[] = {"series",          "categories",   "y_log", "y_ticks",
                                             "reference_lines", "value_labels", "stacked", NULL};
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

static int unknown_member(spec_reader *r, const char *name, const json_member *m) {
    char printable[64];
    return fail(r, name, "unknown field '%s'",
                json_printable(m->key, m->key_len, printable, sizeof printable));
}

/* Rejects members that are not for this kind of chart, naming the kind they are for. */
static int check_chart_keys(spec_reader *r, const json_value *spec, plot_kind kind) {
    for (size_t i = 0; i < spec->as.object.count; i++) {
        const json_member *m = &spec->as.object.members[i];
        if (listed(common_keys, m->key) || listed(keys_of_kind[kind], m->key)) continue;
        for (size_t k = 0; k < sizeof keys_of_kind / sizeof keys_of_kind[0]; k++)
            if (listed(keys_of_kind[k], m->key))
                return fail(r, m->key, "does not apply to %s charts", kind_names[kind]);
        return unknown_member(r, "", m);
    }
    return 0;
}

/* Checks that v (named name) is an object with no members but the listed ones. */
static int check_object(spec_reader *r, const json_value *v, const char *name,
                        const char *const *keys) {
    if (v->type != JSON_OBJECT) return fail(r, name, "expected an object, not %s", type_of(v));
    for (size_t i = 0; i < v->as.object.count; i++)
        if (!listed(keys, v->as.object.members[i].key))
            return unknown_member(r, name, &v->as.object.members[i]);
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

/* One series, named name: x and y of equal length, or (bars) one y per category. */
static int read_one_series(spec_reader *r, const json_value *v, const char *name,
                           const plot_chart *c, plot_series *s) {
    static const char *const keys[] = {"name", "x", "y", NULL};
    static const char *const bar_keys[] = {"name", "y", NULL};
    bool bar = c->kind == PLOT_BAR;
    size_t n_x = 0;
    if (check_object(r, v, name, bar ? bar_keys : keys) ||
        read_string(r, v, name, "name", &s->name) ||
        read_numbers(r, v, name, "y", REQUIRED, &s->y, &s->n) ||
        (!bar && read_numbers(r, v, name, "x", REQUIRED, &s->x, &n_x)))
        return -1;
    if (!bar && n_x != s->n) return fail(r, name, "x has %zu values but y has %zu", n_x, s->n);
    if (bar && s->n != c->n_categories)
        return fail(r, name, "y has %zu values for %zu categories", s->n, c->n_categories);
    return 0;
}

static int read_series(spec_reader *r, const json_value *spec, plot_chart *c) {
    const json_value *v;
    if (get_array(r, spec, "", "series", REQUIRED, &v)) return -1;
    plot_series *series = allocate(r, json_length(v), sizeof *series);
    if (!series) return -1;
    c->series = series;
    c->n_series = json_length(v);
    char name[NAME_LEN];
    for (size_t i = 0; i < c->n_series; i++)
        if (read_one_series(r, json_array_at(v, i), item_name("series", i, name), c, &series[i]))
            return -1;
    return 0;
}

static int read_reference_lines(spec_reader *r, const json_value *spec, plot_chart *c) {
    static const char *const keys[] = {"y", "label", NULL};
    const json_value *v;
    if (get_array(r, spec, "", "reference_lines", OPTIONAL, &v)) return -1;
    if (!v) return 0;
    plot_reference_line *lines = allocate(r, json_length(v), sizeof *lines);
    if (!lines) return -1;
    c->reference_lines = lines;
    c->n_reference_lines = json_length(v);
    for (size_t i = 0; i < c->n_reference_lines; i++) {
        const json_value *item = json_array_at(v, i);
        char name[NAME_LEN];
        item_name("reference_lines", i, name);
        if (check_object(r, item, name, keys) ||
            read_number(r, item, name, "y", REQUIRED, false, &lines[i].y) ||
            read_string(r, item, name, "label", &lines[i].label))
            return -1;
    }
    return 0;
}

static int read_line(spec_reader *r, const json_value *spec, plot_chart *c) {
    if (read_bool(r, spec, "x_log", &c->x_log) || read_bool(r, spec, "y_log", &c->y_log) ||
        read_numbers(r, spec, "", "x_ticks", OPTIONAL, &c->x_ticks, &c->n_x_ticks) ||
        read_numbers(r, spec, "", "y_ticks", OPTIONAL, &c->y_ticks, &c->n_y_ticks))
        return -1;
    return read_series(r, spec, c) || read_reference_lines(r, spec, c) ? -1 : 0;
}

static int read_bar(spec_reader *r, const json_value *spec, plot_chart *c) {
    if (read_strings(r, spec, "categories", REQUIRED, &c->categories, &c->n_categories) ||
        read_bool(r, spec, "y_log", &c->y_log) ||
        read_bool(r, spec, "value_labels", &c->value_labels) ||
        read_bool(r, spec, "stacked", &c->stacked) ||
        read_numbers(r, spec, "", "y_ticks", OPTIONAL, &c->y_ticks, &c->n_y_ticks))
        return -1;
    if (c->stacked && (c->y_log || c->value_labels))
        return fail(r, "stacked", "stacked bars take a linear axis and no value labels");
    return read_series(r, spec, c) || read_reference_lines(r, spec, c) ? -1 : 0;
}

/* Rows of equal, non-zero length; sets rows and cols. */
static int check_matrix_shape(spec_reader *r, const json_value *v, plot_chart *c) {
    c->rows = json_length(v);
    for (size_t i = 0; i < c->rows; i++) {
        const json_value *row = json_array_at(v, i);
        char name[NAME_LEN];
        item_name("matrix", i, name);
        if (row->type != JSON_ARRAY)
            return fail(r, name, "expected an array, not %s", type_of(row));
        if (i == 0 && !(c->cols = json_length(row))) return fail(r, name, "is empty");
        if (json_length(row) != c->cols)
            return fail(r, name, "has %zu values but matrix[0] has %zu", json_length(row), c->cols);
    }
    return 0;
}

static int read_matrix(spec_reader *r, const json_value *spec, plot_chart *c) {
    const json_value *v;
    if (get_array(r, spec, "", "matrix", REQUIRED, &v) || check_matrix_shape(r, v, c)) return -1;
    double *cells = allocate(r, c->rows * c->cols, sizeof *cells);
    if (!cells) return -1;
    char name[NAME_LEN];
    for (size_t i = 0; i < c->rows; i++)
        if (number_items(r, json_array_at(v, i), item_name("matrix", i, name), cells + i * c->cols))
            return -1;
    c->matrix = cells;
    return 0;
}

static int read_heatmap(spec_reader *r, const json_value *spec, plot_chart *c) {
    bool cell_values = false;
    if (read_matrix(r, spec, c) ||
        read_labels(r, spec, "row_labels", c->rows, "rows", &c->row_labels) ||
        read_labels(r, spec, "col_labels", c->cols, "columns", &c->col_labels) ||
        read_number(r, spec, "", "z_min", OPTIONAL, false, &c->z_min) ||
        read_number(r, spec, "", "z_max", OPTIONAL, false, &c->z_max) ||
        read_string(r, spec, "", "z_label", &c->z_label) ||
        read_bool(r, spec, "cell_values", &cell_values))
        return -1;
    if (c->z_min > c->z_max) return fail(r, "z_min", "is greater than z_max");
    if (json_object_get(spec, "cell_values"))
        c->cell_values = cell_values ? PLOT_CELL_VALUES_ON : PLOT_CELL_VALUES_OFF;
    return 0;
}

static int read_positive(spec_reader *r, const json_value *obj, const char *parent, const char *key,
                         double *out) {
    char name[NAME_LEN];
    if (read_number(r, obj, parent, key, REQUIRED, false, out)) return -1;
    if (!(*out > 0)) return fail(r, member_name(parent, key, name), "must be positive");
    return 0;
}

static int read_ceilings(spec_reader *r, const json_value *spec, plot_chart *c) {
    static const char *const keys[] = {"bandwidth_bytes_per_s", "flops_per_s", "bandwidth_label",
                                       "flops_label", NULL};
    const json_value *v;
    if (get_member(r, spec, "", "ceilings", REQUIRED, &v) || check_object(r, v, "ceilings", keys) ||
        read_positive(r, v, "ceilings", "bandwidth_bytes_per_s", &c->bandwidth_bytes_per_s) ||
        read_positive(r, v, "ceilings", "flops_per_s", &c->peak_flops_per_s) ||
        read_string(r, v, "ceilings", "bandwidth_label", &c->bandwidth_label) ||
        read_string(r, v, "ceilings", "flops_label", &c->flops_label))
        return -1;
    return 0;
}

static int read_points(spec_reader *r, const json_value *spec, plot_chart *c) {
    static const char *const keys[] = {"name", "intensity", "flops_per_s", NULL};
    const json_value *v;
    if (get_array(r, spec, "", "points", REQUIRED, &v)) return -1;
    plot_roofline_point *points = allocate(r, json_length(v), sizeof *points);
    if (!points) return -1;
    c->points = points;
    c->n_points = json_length(v);
    for (size_t i = 0; i < c->n_points; i++) {
        const json_value *item = json_array_at(v, i);
        char name[NAME_LEN];
        item_name("points", i, name);
        if (check_object(r, item, name, keys) ||
            read_string(r, item, name, "name", &points[i].name) ||
            read_number(r, item, name, "intensity", REQUIRED, true, &points[i].intensity) ||
            read_number(r, item, name, "flops_per_s", REQUIRED, true, &points[i].flops_per_s))
            return -1;
    }
    return 0;
}

static int read_roofline(spec_reader *r, const json_value *spec, plot_chart *c) {
    c->x_log = c->y_log = true;
    if (read_ceilings(r, spec, c) || read_points(r, spec, c)) return -1;
    return read_reference_lines(r, spec, c);
}

static int read_spec(spec_reader *r, const json_value *spec) {
    plot_chart *c = &r->spec->chart;
    if (spec->type != JSON_OBJECT) return fail(r, "", "expected an object, not %s", type_of(spec));
    plot_kind kind = PLOT_LINE;
    if (read_kind(r, spec, &kind) || check_chart_keys(r, spec, kind)) return -1;
    *c = plot_chart_defaults(kind);
    if (read_string(r, spec, "", "file", &r->spec->file) ||
        read_string(r, spec, "", "title", &c->title) ||
        read_string(r, spec, "", "subtitle", &c->subtitle) ||
        read_string(r, spec, "", "x_label", &c->x_label) ||
        read_string(r, spec, "", "y_label", &c->y_label) ||
        read_size(r, spec, "width", &c->width) || read_size(r, spec, "height", &c->height))
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
