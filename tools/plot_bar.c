/* Bar charts: one bar per series in each category, side by side, or stacked on one bar. */
#include <math.h>
#include <stdlib.h>

#include "tools/plot_internal.h"

#define GROUP_FRACTION 0.8 /* of a category's width taken by its bars */
#define MAX_LABEL_LINES 3  /* of a category label */
#define LABEL_ANGLE 35.0   /* degrees, for category labels too long to wrap */
#define MAX_ROTATED_LABEL 260.0
#define CATEGORY_TICK 6.0
#define VALUE_SIZE 13.0
#define SMALL_VALUE_SIZE 11.0
#define VALUE_GAP 4.0

static const char *category_name(const plot_chart *c, size_t i) {
    return c->categories[i] ? c->categories[i] : "";
}

typedef struct {
    bool rotated;
    int lines;
    double height; /* room below the area */
} category_labels;

static double category_slot(const plot_chart *c, const plot_xy_axes *a) {
    return (a->area.x1 - a->area.x0) / (double)(c->n_categories ? c->n_categories : 1);
}

static double category_label_width(double slot) { return slot - 8; }

static plot_text_style rotated_label_style(void) {
    return plot_style(PLOT_TICK_SIZE, plot_text_color, PLOT_ALIGN_END, PLOT_VALIGN_TOP,
                      LABEL_ANGLE);
}

/* Wraps every category label to the slot, or rotates them all when one does not fit. */
static category_labels layout_categories(const plot_frame *f, double slot) {
    const plot_chart *c = f->chart;
    category_labels labels = {false, 1, 0};
    plot_text_line lines[MAX_LABEL_LINES + 1];
    for (size_t i = 0; i < c->n_categories && !labels.rotated; i++) {
        bool shortened;
        int n = plot_wrap_text(f->font, PLOT_TICK_SIZE, category_name(c, i),
                               category_label_width(slot), MAX_LABEL_LINES + 1, lines, &shortened);
        if (shortened || n > MAX_LABEL_LINES)
            labels.rotated = true;
        else if (n > labels.lines)
            labels.lines = n;
    }
    double tick_room =
        plot_x_tick_labels_height(f->font) - plot_text_height(f->font, PLOT_TICK_SIZE);
    if (!labels.rotated) {
        labels.height = tick_room + labels.lines * plot_text_height(f->font, PLOT_TICK_SIZE);
        return labels;
    }
    double tallest = 0;
    plot_text_style style = rotated_label_style();
    for (size_t i = 0; i < c->n_categories; i++) {
        plot_wrap_text(f->font, PLOT_TICK_SIZE, category_name(c, i), MAX_ROTATED_LABEL, 1, lines,
                       NULL);
        plot_rect box = plot_text_box(f->font, &style, 0, 0, lines[0].text);
        tallest = fmax(tallest, box.y1 - box.y0);
    }
    labels.height = tick_room + tallest;
    return labels;
}

/* How long a turned label ending at x may be without running off the left of the image. */
static double rotated_label_room(const plot_font *font, double x) {
    double angle = LABEL_ANGLE * PLOT_PI / 180;
    double room =
        (x - PLOT_MARGIN / 2 - plot_text_height(font, PLOT_TICK_SIZE) * sin(angle)) / cos(angle);
    return fmin(MAX_ROTATED_LABEL, fmax(room, 0));
}

static void draw_category_labels(plot_frame *f, const plot_xy_axes *a,
                                 const category_labels *labels) {
    const plot_chart *c = f->chart;
    double slot = category_slot(c, a), line_height = plot_text_height(f->font, PLOT_TICK_SIZE);
    double y = a->area.y1 + plot_x_tick_labels_height(f->font) - line_height;
    plot_text_style style = labels->rotated ? rotated_label_style()
                                            : plot_style(PLOT_TICK_SIZE, plot_text_color,
                                                         PLOT_ALIGN_CENTER, PLOT_VALIGN_TOP, 0);
    plot_text_line lines[MAX_LABEL_LINES];
    for (size_t i = 0; i < c->n_categories; i++) {
        double x = a->area.x0 + (i + 0.5) * slot;
        plot_fill_rect(
            f->canvas,
            (plot_rect){floor(x), a->area.y1 + 1, floor(x) + 1, a->area.y1 + 1 + CATEGORY_TICK},
            plot_frame_color);
        if (labels->rotated) {
            /* Its end a little right of the tick, so that the text's middle points at it. */
            double end = x + 4;
            plot_wrap_text(f->font, PLOT_TICK_SIZE, category_name(c, i),
                           rotated_label_room(f->font, end), 1, lines, NULL);
            plot_draw_text(f->canvas, f->font, &style, end, y, lines[0].text);
            continue;
        }
        int n = plot_wrap_text(f->font, PLOT_TICK_SIZE, category_name(c, i),
                               category_label_width(slot), labels->lines, lines, NULL);
        for (int k = 0; k < n; k++)
            plot_draw_text(f->canvas, f->font, &style, x, y + k * line_height, lines[k].text);
    }
}

/* Where the area must start so that the first turned label stays on the image (0: anywhere). */
static double first_label_room(const plot_frame *f, const plot_xy_axes *a,
                               const category_labels *labels) {
    const plot_chart *c = f->chart;
    if (!labels->rotated || !c->n_categories) return 0;
    double angle = LABEL_ANGLE * PLOT_PI / 180;
    double length =
        fmin(MAX_ROTATED_LABEL, plot_text_width(f->font, PLOT_TICK_SIZE, category_name(c, 0)));
    double reach = length * cos(angle) + plot_text_height(f->font, PLOT_TICK_SIZE) * sin(angle);
    /* Solves left + (right - left) / (2 n) + 4 - reach = PLOT_MARGIN / 2 for left. */
    double half_slot = 0.5 / (double)c->n_categories;
    return (PLOT_MARGIN / 2 + reach - 4 - a->area.x1 * half_slot) / (1 - half_slot) + 1;
}

/* A stacked bar's segment of series s in category k: its value, 0 when it has none. */
static double stacked_value(const plot_chart *c, size_t s, size_t k) {
    const plot_series *series = &c->series[s];
    return k < series->n && isfinite(series->y[k]) && series->y[k] > 0 ? series->y[k] : 0;
}

/* The top of the segments of series [0, s) in category k. */
static double stack_below(const plot_chart *c, size_t s, size_t k) {
    double sum = 0;
    for (size_t i = 0; i < s; i++) sum += stacked_value(c, i, k);
    return sum;
}

static void fit_bar_axis(const plot_chart *c, double headroom, plot_xy_axes *a) {
    plot_range y = plot_range_empty();
    for (size_t i = 0; i < c->n_series && !c->stacked; i++)
        plot_range_add_accepted(&y, c->y_log, c->series[i].y, c->series[i].n);
    for (size_t k = 0; k < c->n_categories && c->stacked; k++)
        plot_range_add(&y, stack_below(c, c->n_series, k));
    plot_range_add_accepted(&y, c->y_log, c->y_ticks, c->n_y_ticks);
    for (size_t i = 0; i < c->n_reference_lines; i++)
        if (plot_axis_accepts(c->y_log, c->reference_lines[i].y))
            plot_range_add(&y, c->reference_lines[i].y);
    if (!c->y_log && !isnan(y.lo)) plot_range_add(&y, 0); /* bars grow from zero */
    plot_axis_fit(&a->y, y.lo, y.hi, c->y_log, headroom);
    if (!c->y_log && y.lo >= 0) a->y.lo = 0;
    a->x = (plot_axis){0, (double)(c->n_categories ? c->n_categories : 1), false, 0, 0};
}

static double bar_width(const plot_chart *c, const plot_xy_axes *a) {
    const size_t side_by_side = c->stacked || !c->n_series ? 1 : c->n_series;
    return category_slot(c, a) * GROUP_FRACTION / (double)side_by_side;
}

/* The bar of series s in category k, and whether it has one. */
static bool bar_rect(const plot_chart *c, const plot_xy_axes *a, size_t s, size_t k,
                     plot_rect *bar) {
    const plot_series *series = &c->series[s];
    if (k >= series->n || !plot_axis_accepts(c->y_log, series->y[k])) return false;
    if (c->stacked && stacked_value(c, s, k) == 0) return false;
    double slot = category_slot(c, a), width = bar_width(c, a);
    double x0 = a->area.x0 + k * slot + slot * (1 - GROUP_FRACTION) / 2 +
                (c->stacked ? 0 : (double)s) * width;
    double below = c->stacked ? stack_below(c, s, k) : 0;
    double base = plot_axis_map(&a->y, c->y_log ? a->y.lo : below);
    double top = plot_axis_map(&a->y, below + series->y[k]);
    double gap = width > 6 ? 1 : 0; /* a hairline of background between neighbouring bars */
    *bar = (plot_rect){x0 + gap, fmin(base, top), x0 + width - gap, fmax(base, top)};
    return true;
}

static size_t count_bars(const plot_chart *c, const plot_xy_axes *a) {
    size_t n = 0;
    plot_rect bar;
    for (size_t s = 0; s < c->n_series; s++)
        for (size_t k = 0; k < c->n_categories; k++) n += bar_rect(c, a, s, k, &bar);
    return n;
}

/* How every value label of a chart is written: the size, and whether turned upright. */
typedef struct {
    double size;
    bool upright;
} value_labels;

static double widest_value(const plot_frame *f, double size) {
    const plot_chart *c = f->chart;
    double widest = 0;
    char text[PLOT_TICK_LABEL_LEN];
    for (size_t s = 0; s < c->n_series; s++)
        for (size_t k = 0; k < c->series[s].n && k < c->n_categories; k++)
            if (plot_axis_accepts(c->y_log, c->series[s].y[k]))
                widest = fmax(widest, plot_text_width(f->font, size,
                                                      plot_format_value(c->series[s].y[k], 3, text,
                                                                        sizeof text)));
    return widest;
}

/* Level labels when they fit over the bars (at a smaller size if need be), else upright. */
static value_labels choose_value_labels(const plot_frame *f, const plot_xy_axes *a) {
    double room = bar_width(f->chart, a) + 4;
    if (widest_value(f, VALUE_SIZE) <= room) return (value_labels){VALUE_SIZE, false};
    if (widest_value(f, SMALL_VALUE_SIZE) <= room) return (value_labels){SMALL_VALUE_SIZE, false};
    return (value_labels){VALUE_SIZE, true};
}

/* Room the value labels need beyond the tallest bar. */
static double value_labels_room(const plot_frame *f, const value_labels *v) {
    return VALUE_GAP + (v->upright ? widest_value(f, v->size) : plot_text_height(f->font, v->size));
}

/* The value label of a bar: past its end (above, or below for negative values). */
static void place_value_label(const plot_rect *bar, double value, const value_labels *v,
                              plot_text_style *style, plot_point *at) {
    bool negative = value < 0;
    *style = v->upright
                 ? plot_style(v->size, plot_text_color,
                              negative ? PLOT_ALIGN_END : PLOT_ALIGN_START, PLOT_VALIGN_MIDDLE, 90)
                 : plot_style(v->size, plot_text_color, PLOT_ALIGN_CENTER,
                              negative ? PLOT_VALIGN_TOP : PLOT_VALIGN_BOTTOM, 0);
    *at =
        (plot_point){(bar->x0 + bar->x1) / 2, negative ? bar->y1 + VALUE_GAP : bar->y0 - VALUE_GAP};
}

/* Visits every bar: draws it and its value label when canvas is given, else adds both as
 * obstacles. */
static void visit_bars(plot_frame *f, const plot_xy_axes *a, plot_canvas *canvas,
                       plot_obstacles *o) {
    const plot_chart *c = f->chart;
    value_labels v = choose_value_labels(f, a);
    for (size_t s = 0; s < c->n_series; s++)
        for (size_t k = 0; k < c->n_categories; k++) {
            plot_rect bar;
            if (!bar_rect(c, a, s, k, &bar)) continue;
            if (canvas)
                plot_fill_rect(canvas, bar, plot_series_color(s));
            else
                plot_obstacles_add_rect(o, bar);
            if (!c->value_labels) continue;
            char text[PLOT_TICK_LABEL_LEN];
            plot_text_style style;
            plot_point at;
            plot_format_value(c->series[s].y[k], 3, text, sizeof text);
            place_value_label(&bar, c->series[s].y[k], &v, &style, &at);
            if (canvas)
                plot_draw_text(canvas, f->font, &style, at.x, at.y, text);
            else
                plot_obstacles_add_rect(o, plot_text_box(f->font, &style, at.x, at.y, text));
        }
}

static void bar_obstacles(plot_frame *f, const plot_xy_axes *a, plot_obstacles *o) {
    visit_bars(f, a, NULL, o);
    plot_add_reference_obstacles(f->chart, a->area, &a->y, o);
}

/* Lays out a bar chart: category labels decide the room below, value labels the room above. */
static void layout_bars(const plot_frame *f, double right_reserve, plot_xy_axes *a,
                        category_labels *labels) {
    const plot_chart *c = f->chart;
    fit_bar_axis(c, PLOT_DATA_PAD, a);
    plot_place_area(f, plot_x_tick_labels_height(f->font), right_reserve, 0, a);
    *labels = layout_categories(f, category_slot(c, a));
    if (c->value_labels) {
        value_labels v = choose_value_labels(f, a);
        double room = value_labels_room(f, &v), height = a->area.y1 - a->area.y0 - labels->height;
        /* The tallest bar then ends `room` pixels below the top of the area. */
        fit_bar_axis(c, fmax(PLOT_DATA_PAD, room / fmax(height - room, 1)), a);
    }
    plot_place_area(f, labels->height, right_reserve, first_label_room(f, a, labels), a);
}

/* A line at zero when bars go both up and down. */
static void draw_zero_line(plot_frame *f, const plot_xy_axes *a) {
    if (f->chart->y_log || !(a->y.lo < 0 && a->y.hi > 0)) return;
    double y = floor(plot_axis_map(&a->y, 0));
    plot_fill_rect(f->canvas, (plot_rect){a->area.x0, y, a->area.x1, y + 1}, plot_frame_color);
}

int plot_draw_bar_chart(plot_frame *f, plot_layout *layout) {
    const plot_chart *c = f->chart;
    plot_xy_axes a = {0};
    category_labels labels;
    size_t n_entries;
    bool failed;
    plot_legend_entry *entries = plot_legend_entries(c, &n_entries, &failed);
    plot_legend legend = {entries, n_entries, true};
    plot_point legend_size = plot_legend_size(f->font, &legend), legend_at = {0, 0};
    plot_obstacles obstacles = {0};
    layout_bars(f, 0, &a, &labels);
    bar_obstacles(f, &a, &obstacles);
    if (n_entries && !obstacles.failed &&
        plot_legend_goes_outside(f, &obstacles, &a, legend_size, &legend_at)) {
        layout_bars(f, legend_size.x + PLOT_LEGEND_OUTSIDE_GAP, &a, &labels);
        legend_at = (plot_point){a.area.x1 + PLOT_LEGEND_OUTSIDE_GAP, a.area.y0};
        plot_obstacles_free(&obstacles);
        bar_obstacles(f, &a, &obstacles);
    }
    if (n_entries)
        plot_obstacles_add_rect(&obstacles,
                                (plot_rect){legend_at.x, legend_at.y, legend_at.x + legend_size.x,
                                            legend_at.y + legend_size.y});
    bool ok = !failed && !obstacles.failed;
    if (ok) {
        plot_draw_grid(f->canvas, a.area, NULL, NULL, &a.y, &a.y_ticks);
        plot_draw_reference_lines(f, a.area, &a.y, &obstacles);
        visit_bars(f, &a, f->canvas, NULL);
        draw_zero_line(f, &a);
        if (c->n_categories) draw_category_labels(f, &a, &labels);
        if (!count_bars(c, &a)) plot_draw_note(f, a.area, "no data");
        plot_draw_xy_axes(f, &a, false, labels.height);
        if (n_entries) plot_draw_legend(f->canvas, f->font, &legend, legend_at);
        plot_export_layout(&a, layout);
    }
    plot_obstacles_free(&obstacles);
    free(entries);
    return ok ? 0 : -1;
}
