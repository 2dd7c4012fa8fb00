/* The chart kinds on x/y axes: lines with markers, grouped bars, and the roofline. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/plot_internal.h"

#define AXIS_LABEL_GAP 8.0      /* between tick labels and the axis label */
#define LEGEND_OUTSIDE_GAP 16.0 /* between the plot area and a legend outside it */
#define DATA_PAD 0.04           /* room around the data, as a fraction of the axis span */
#define LINE_WIDTH 2.5
#define MARKER_RADIUS 4.5
#define MIN_MARKER_SPACING 9.0 /* pixels per point below which markers are left out */

/* ---- data ranges ---- */

typedef struct {
    double lo, hi; /* NaN when empty */
} range;

static range empty_range(void) { return (range){NAN, NAN}; }

static void range_add(range *r, double value) {
    if (isnan(r->lo) || value < r->lo) r->lo = value;
    if (isnan(r->hi) || value > r->hi) r->hi = value;
}

static void range_add_accepted(range *r, bool log, const double *values, size_t n) {
    for (size_t i = 0; values && i < n; i++)
        if (plot_axis_accepts(log, values[i])) range_add(r, values[i]);
}

/* ---- the plot area and its axes ---- */

typedef struct {
    plot_rect area;
    plot_axis x, y; /* bar charts: x is the category index, category i spans [i, i + 1) */
    plot_ticks x_ticks, y_ticks;
} xy_axes;

/*
 * Places the plot area below the titles, above x_labels_height of x tick labels, right of the y
 * tick labels (and of min_left) and left of right_reserve; maps the (already fitted) y axis and
 * makes its ticks.
 */
static void place_area(const plot_frame *f, double x_labels_height, double right_reserve,
                       double min_left, xy_axes *a) {
    const plot_chart *c = f->chart;
    double axis_label_room = plot_text_height(f->font, PLOT_AXIS_LABEL_SIZE) + AXIS_LABEL_GAP;
    double top = f->title_bottom + plot_text_height(f->font, PLOT_TICK_SIZE);
    double bottom = f->canvas->height - PLOT_MARGIN - x_labels_height -
                    (plot_has_text(c->x_label) ? axis_label_room : 0);
    bottom = fmax(bottom, top + 10);
    a->y.pixel_lo = round(bottom);
    a->y.pixel_hi = round(top);
    plot_axis_ticks(&a->y, true, f->font, PLOT_TICK_SIZE, c->y_ticks, c->n_y_ticks, &a->y_ticks);
    double left = fmax(min_left, PLOT_MARGIN + plot_y_tick_labels_width(f->font, &a->y_ticks) +
                                     (plot_has_text(c->y_label) ? axis_label_room : 0));
    double right = fmax(f->canvas->width - PLOT_MARGIN - right_reserve, left + 10);
    a->area = (plot_rect){round(left), round(top), round(right), round(bottom)};
    a->x.pixel_lo = a->area.x0;
    a->x.pixel_hi = a->area.x1;
}

/* Makes the x ticks, pulling the area's right edge in when the last label would be cut off. */
static void make_x_ticks(const plot_frame *f, xy_axes *a) {
    const plot_chart *c = f->chart;
    for (int attempt = 0; attempt < 2; attempt++) {
        plot_axis_ticks(&a->x, false, f->font, PLOT_TICK_SIZE, c->x_ticks, c->n_x_ticks,
                        &a->x_ticks);
        double overhang = 0;
        for (int i = 0; i < a->x_ticks.count; i++) {
            const plot_tick *t = &a->x_ticks.tick[i];
            if (!t->major) continue;
            double right = plot_axis_map(&a->x, t->value) +
                           plot_text_width(f->font, PLOT_TICK_SIZE, t->label) / 2;
            overhang = fmax(overhang, right - (f->canvas->width - PLOT_MARGIN / 2));
        }
        if (overhang <= 0) return;
        a->area.x1 = a->x.pixel_hi = round(a->area.x1 - overhang);
    }
}

/* Lays out a chart whose x axis is numeric: the area, both axes mapped, both sets of ticks. */
static void layout_numeric(const plot_frame *f, double right_reserve, xy_axes *a) {
    place_area(f, plot_x_tick_labels_height(f->font), right_reserve, 0, a);
    make_x_ticks(f, a);
}

/* Frame, ticks and axis labels, drawn over the data; bar charts label their categories. */
static void draw_axes_and_labels(plot_frame *f, const xy_axes *a, bool numeric_x,
                                 double x_labels_height) {
    plot_draw_axes(f, a->area, &a->x, numeric_x ? &a->x_ticks : NULL, &a->y, &a->y_ticks);
    double y_label_x = a->area.x0 - plot_y_tick_labels_width(f->font, &a->y_ticks) -
                       AXIS_LABEL_GAP - plot_text_height(f->font, PLOT_AXIS_LABEL_SIZE);
    plot_draw_axis_labels(f, a->area, a->area.y1 + 1 + x_labels_height + AXIS_LABEL_GAP,
                          fmax(y_label_x, PLOT_MARGIN));
}

static void export_layout(const xy_axes *a, plot_layout *layout) {
    *layout = (plot_layout){a->area.x0, a->area.y0, a->area.x1, a->area.y1, a->x, a->y};
}

/* The legend entries of the named series; *n of them. NULL with *n = 0 when there are none. */
static plot_legend_entry *legend_entries(const plot_chart *c, size_t *n, bool *failed) {
    *n = 0;
    *failed = false;
    for (size_t i = 0; i < c->n_series; i++) *n += plot_has_text(c->series[i].name);
    if (!*n) return NULL;
    plot_legend_entry *entries = malloc(*n * sizeof *entries);
    if (!entries) {
        *n = 0;
        *failed = true;
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < c->n_series; i++)
        if (plot_has_text(c->series[i].name))
            entries[k++] = (plot_legend_entry){c->series[i].name, plot_series_color(i),
                                               plot_series_marker(i), true};
    return entries;
}

/*
 * Whether the legend should go right of the plot area: it hides data inside, and outside it
 * would leave the area most of the width.
 */
static bool legend_goes_outside(const plot_frame *f, const plot_obstacles *obstacles,
                                const xy_axes *a, plot_point size, plot_point *inside_at) {
    double hidden = plot_place_legend(obstacles, a->area, size, inside_at);
    return hidden > 0 && size.x + LEGEND_OUTSIDE_GAP <= 0.35 * f->canvas->width;
}

/* ---- line charts ---- */

/* Pixel positions of a series' points; NaN where a point cannot be drawn. */
static void map_series(const plot_series *s, const xy_axes *a, plot_point *points) {
    for (size_t i = 0; i < s->n; i++) {
        bool ok = plot_axis_accepts(a->x.log, s->x[i]) && plot_axis_accepts(a->y.log, s->y[i]);
        points[i] = ok ? (plot_point){plot_axis_map(&a->x, s->x[i]), plot_axis_map(&a->y, s->y[i])}
                       : (plot_point){NAN, NAN};
    }
}

static size_t count_drawable(const plot_point *points, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += !isnan(points[i].x);
    return k;
}

/* Whether markers fit: the drawn points are, on average, far enough apart. */
static bool markers_fit(const plot_point *points, size_t n, const xy_axes *a) {
    size_t drawn = count_drawable(points, n);
    return drawn <= 1 || (a->area.x1 - a->area.x0) / (double)(drawn - 1) >= MIN_MARKER_SPACING;
}

static void add_series_obstacles(const plot_point *points, size_t n, plot_obstacles *o) {
    for (size_t i = 0; i < n; i++) {
        if (isnan(points[i].x)) continue;
        if (i + 1 < n && !isnan(points[i + 1].x))
            plot_obstacles_add_segment(o, points[i], points[i + 1]);
        else
            plot_obstacles_add_point(o, points[i]);
    }
}

/* Draws the runs of drawable points as lines, then the markers. */
static void draw_series(plot_canvas *canvas, const plot_point *points, size_t n, size_t index,
                        bool markers) {
    plot_color color = plot_series_color(index);
    for (size_t start = 0; start < n;) {
        while (start < n && isnan(points[start].x)) start++;
        size_t end = start;
        while (end < n && !isnan(points[end].x)) end++;
        if (end - start >= 2) plot_polyline(canvas, points + start, end - start, LINE_WIDTH, color);
        start = end;
    }
    for (size_t i = 0; i < n; i++) {
        bool alone = (i == 0 || isnan(points[i - 1].x)) && (i + 1 == n || isnan(points[i + 1].x));
        if (!isnan(points[i].x) && (markers || alone))
            plot_draw_marker(canvas, plot_series_marker(index), points[i], MARKER_RADIUS, color);
    }
}

static size_t longest_series(const plot_chart *c) {
    size_t n = 1;
    for (size_t i = 0; i < c->n_series; i++) n = c->series[i].n > n ? c->series[i].n : n;
    return n;
}

/* Collects every series' points and the reference lines as obstacles. */
static bool line_obstacles(const plot_chart *c, const xy_axes *a, plot_point *points,
                           plot_obstacles *o) {
    for (size_t i = 0; i < c->n_series; i++) {
        map_series(&c->series[i], a, points);
        add_series_obstacles(points, c->series[i].n, o);
    }
    plot_add_reference_obstacles(c, a->area, &a->y, o);
    return !o->failed;
}

static void fit_line_axes(const plot_chart *c, xy_axes *a) {
    range x = empty_range(), y = empty_range();
    for (size_t i = 0; i < c->n_series; i++) {
        const plot_series *s = &c->series[i];
        for (size_t k = 0; k < s->n; k++)
            if (plot_axis_accepts(c->x_log, s->x[k]) && plot_axis_accepts(c->y_log, s->y[k]))
                range_add(&x, s->x[k]), range_add(&y, s->y[k]);
    }
    range_add_accepted(&x, c->x_log, c->x_ticks, c->n_x_ticks);
    range_add_accepted(&y, c->y_log, c->y_ticks, c->n_y_ticks);
    for (size_t i = 0; i < c->n_reference_lines; i++)
        if (plot_axis_accepts(c->y_log, c->reference_lines[i].y))
            range_add(&y, c->reference_lines[i].y);
    plot_axis_fit(&a->x, x.lo, x.hi, c->x_log, DATA_PAD);
    /* A linear y axis of positive data starts at zero when zero is near, so heights compare. */
    if (!c->y_log && y.lo >= 0 && y.lo <= 0.3 * y.hi) {
        plot_axis_fit(&a->y, 0, y.hi, false, DATA_PAD);
        a->y.lo = 0;
    } else {
        plot_axis_fit(&a->y, y.lo, y.hi, c->y_log, DATA_PAD);
    }
}

/*
 * Draws every series, clipped to the area, and notes in the legend entries which have markers.
 * Returns how many points were drawn.
 */
static size_t draw_all_series(plot_frame *f, const xy_axes *a, plot_point *points,
                              plot_legend_entry *entries) {
    const plot_chart *c = f->chart;
    size_t drawn = 0, entry = 0;
    plot_canvas_clip(f->canvas, a->area);
    for (size_t i = 0; i < c->n_series; i++) {
        map_series(&c->series[i], a, points);
        bool markers = markers_fit(points, c->series[i].n, a);
        draw_series(f->canvas, points, c->series[i].n, i, markers);
        drawn += count_drawable(points, c->series[i].n);
        if (plot_has_text(c->series[i].name)) entries[entry++].show_marker = markers;
    }
    plot_canvas_unclip(f->canvas);
    return drawn;
}

int plot_draw_line_chart(plot_frame *f, plot_layout *layout) {
    const plot_chart *c = f->chart;
    xy_axes a = {0};
    fit_line_axes(c, &a);
    size_t n_entries;
    bool failed;
    plot_legend_entry *entries = legend_entries(c, &n_entries, &failed);
    plot_point *points = failed ? NULL : malloc(longest_series(c) * sizeof *points);
    plot_obstacles obstacles = {0};
    plot_legend legend = {entries, n_entries, false};
    plot_point legend_size = plot_legend_size(f->font, &legend), legend_at = {0, 0};
    layout_numeric(f, 0, &a);
    bool ok = points && line_obstacles(c, &a, points, &obstacles);
    if (ok && n_entries && legend_goes_outside(f, &obstacles, &a, legend_size, &legend_at)) {
        layout_numeric(f, legend_size.x + LEGEND_OUTSIDE_GAP, &a);
        legend_at = (plot_point){a.area.x1 + LEGEND_OUTSIDE_GAP, a.area.y0};
        plot_obstacles_free(&obstacles);
        ok = line_obstacles(c, &a, points, &obstacles);
    }
    if (ok) {
        if (n_entries)
            plot_obstacles_add_rect(&obstacles, (plot_rect){legend_at.x, legend_at.y,
                                                            legend_at.x + legend_size.x,
                                                            legend_at.y + legend_size.y});
        plot_draw_grid(f->canvas, a.area, &a.x, &a.x_ticks, &a.y, &a.y_ticks);
        plot_draw_reference_lines(f, a.area, &a.y, &obstacles);
        if (!draw_all_series(f, &a, points, entries)) plot_draw_note(f, a.area, "no data");
        draw_axes_and_labels(f, &a, true, plot_x_tick_labels_height(f->font));
        if (n_entries) plot_draw_legend(f->canvas, f->font, &legend, legend_at);
        export_layout(&a, layout);
    }
    plot_obstacles_free(&obstacles);
    free(points);
    free(entries);
    return ok ? 0 : -1;
}

/* ---- grouped bar charts ---- */

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

static double category_slot(const plot_chart *c, const xy_axes *a) {
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

static void draw_category_labels(plot_frame *f, const xy_axes *a, const category_labels *labels) {
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
static double first_label_room(const plot_frame *f, const xy_axes *a,
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

static void fit_bar_axis(const plot_chart *c, double headroom, xy_axes *a) {
    range y = empty_range();
    for (size_t i = 0; i < c->n_series; i++)
        range_add_accepted(&y, c->y_log, c->series[i].y, c->series[i].n);
    range_add_accepted(&y, c->y_log, c->y_ticks, c->n_y_ticks);
    for (size_t i = 0; i < c->n_reference_lines; i++)
        if (plot_axis_accepts(c->y_log, c->reference_lines[i].y))
            range_add(&y, c->reference_lines[i].y);
    if (!c->y_log && !isnan(y.lo)) range_add(&y, 0); /* bars grow from zero */
    plot_axis_fit(&a->y, y.lo, y.hi, c->y_log, headroom);
    if (!c->y_log && y.lo >= 0) a->y.lo = 0;
    a->x = (plot_axis){0, (double)(c->n_categories ? c->n_categories : 1), false, 0, 0};
}

static double bar_width(const plot_chart *c, const xy_axes *a) {
    return category_slot(c, a) * GROUP_FRACTION / (double)(c->n_series ? c->n_series : 1);
}

/* The bar of series s in category k, and whether it has one. */
static bool bar_rect(const plot_chart *c, const xy_axes *a, size_t s, size_t k, plot_rect *bar) {
    const plot_series *series = &c->series[s];
    if (k >= series->n || !plot_axis_accepts(c->y_log, series->y[k])) return false;
    double slot = category_slot(c, a), width = bar_width(c, a);
    double x0 = a->area.x0 + k * slot + slot * (1 - GROUP_FRACTION) / 2 + s * width;
    double base = plot_axis_map(&a->y, c->y_log ? a->y.lo : 0);
    double top = plot_axis_map(&a->y, series->y[k]);
    double gap = width > 6 ? 1 : 0; /* a hairline of background between neighbouring bars */
    *bar = (plot_rect){x0 + gap, fmin(base, top), x0 + width - gap, fmax(base, top)};
    return true;
}

static size_t count_bars(const plot_chart *c, const xy_axes *a) {
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
static value_labels choose_value_labels(const plot_frame *f, const xy_axes *a) {
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
static void visit_bars(plot_frame *f, const xy_axes *a, plot_canvas *canvas, plot_obstacles *o) {
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

static void bar_obstacles(plot_frame *f, const xy_axes *a, plot_obstacles *o) {
    visit_bars(f, a, NULL, o);
    plot_add_reference_obstacles(f->chart, a->area, &a->y, o);
}

/* Lays out a bar chart: category labels decide the room below, value labels the room above. */
static void layout_bars(const plot_frame *f, double right_reserve, xy_axes *a,
                        category_labels *labels) {
    const plot_chart *c = f->chart;
    fit_bar_axis(c, DATA_PAD, a);
    place_area(f, plot_x_tick_labels_height(f->font), right_reserve, 0, a);
    *labels = layout_categories(f, category_slot(c, a));
    if (c->value_labels) {
        value_labels v = choose_value_labels(f, a);
        double room = value_labels_room(f, &v), height = a->area.y1 - a->area.y0 - labels->height;
        /* The tallest bar then ends `room` pixels below the top of the area. */
        fit_bar_axis(c, fmax(DATA_PAD, room / fmax(height - room, 1)), a);
    }
    place_area(f, labels->height, right_reserve, first_label_room(f, a, labels), a);
}

/* A line at zero when bars go both up and down. */
static void draw_zero_line(plot_frame *f, const xy_axes *a) {
    if (f->chart->y_log || !(a->y.lo < 0 && a->y.hi > 0)) return;
    double y = floor(plot_axis_map(&a->y, 0));
    plot_fill_rect(f->canvas, (plot_rect){a->area.x0, y, a->area.x1, y + 1}, plot_frame_color);
}

int plot_draw_bar_chart(plot_frame *f, plot_layout *layout) {
    const plot_chart *c = f->chart;
    xy_axes a = {0};
    category_labels labels;
    size_t n_entries;
    bool failed;
    plot_legend_entry *entries = legend_entries(c, &n_entries, &failed);
    plot_legend legend = {entries, n_entries, true};
    plot_point legend_size = plot_legend_size(f->font, &legend), legend_at = {0, 0};
    plot_obstacles obstacles = {0};
    layout_bars(f, 0, &a, &labels);
    bar_obstacles(f, &a, &obstacles);
    if (n_entries && !obstacles.failed &&
        legend_goes_outside(f, &obstacles, &a, legend_size, &legend_at)) {
        layout_bars(f, legend_size.x + LEGEND_OUTSIDE_GAP, &a, &labels);
        legend_at = (plot_point){a.area.x1 + LEGEND_OUTSIDE_GAP, a.area.y0};
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
        draw_axes_and_labels(f, &a, false, labels.height);
        if (n_entries) plot_draw_legend(f->canvas, f->font, &legend, legend_at);
        export_layout(&a, layout);
    }
    plot_obstacles_free(&obstacles);
    free(entries);
    return ok ? 0 : -1;
}

/* ---- roofline ---- */

#define ROOF_WIDTH 2.5
#define POINT_RADIUS 5.5
#define POINT_LABEL_SIZE 14.0
static const plot_color roof_color = {0x33, 0x33, 0x33};
static const plot_color attainable_color = {0xf3, 0xf5, 0xf8};

static double ridge_intensity(const plot_chart *c) {
    return c->peak_flops_per_s / c->bandwidth_bytes_per_s;
}

static bool has_roof(const plot_chart *c) {
    return c->bandwidth_bytes_per_s > 0 && c->peak_flops_per_s > 0 &&
           plot_axis_accepts(true, ridge_intensity(c));
}

static bool point_drawable(const plot_roofline_point *p) {
    return plot_axis_accepts(true, p->intensity) && plot_axis_accepts(true, p->flops_per_s);
}

/* Both axes: the points and the roof, with two decades of the slope and one of the flat part. */
static void fit_roofline_axes(const plot_chart *c, xy_axes *a) {
    range x = empty_range(), y = empty_range();
    for (size_t i = 0; i < c->n_points; i++)
        if (point_drawable(&c->points[i]))
            range_add(&x, c->points[i].intensity), range_add(&y, c->points[i].flops_per_s);
    if (has_roof(c)) {
        double ridge = ridge_intensity(c);
        range_add(&x, ridge / 100), range_add(&x, ridge * 10);
        range_add(&y, c->peak_flops_per_s);
        range_add(&y, c->bandwidth_bytes_per_s * x.lo);
    }
    for (size_t i = 0; i < c->n_reference_lines; i++)
        if (plot_axis_accepts(true, c->reference_lines[i].y))
            range_add(&y, c->reference_lines[i].y);
    plot_axis_fit(&a->x, x.lo, x.hi, true, DATA_PAD);
    plot_axis_fit(&a->y, y.lo, y.hi, true, 0.06);
}

/* The roof's corners: where the slope enters at the left edge, the ridge, the right edge. */
static void roof_corners(const plot_chart *c, const xy_axes *a, plot_point corners[3]) {
    double ridge = ridge_intensity(c);
    corners[0] = (plot_point){plot_axis_map(&a->x, a->x.lo),
                              plot_axis_map(&a->y, c->bandwidth_bytes_per_s * a->x.lo)};
    corners[1] =
        (plot_point){plot_axis_map(&a->x, ridge), plot_axis_map(&a->y, c->peak_flops_per_s)};
    corners[2] = (plot_point){plot_axis_map(&a->x, a->x.hi), corners[1].y};
}

/* Shades what the roof makes attainable: everything below it. */
static void shade_under_roof(plot_frame *f, const xy_axes *a, const plot_point corners[3]) {
    plot_point under[5] = {{corners[0].x, fmax(corners[0].y, a->area.y1)},
                           corners[0],
                           corners[1],
                           corners[2],
                           {corners[2].x, a->area.y1}};
    plot_canvas_clip(f->canvas, a->area);
    plot_fill_polygon(f->canvas, under, 5, attainable_color);
    plot_canvas_unclip(f->canvas);
}

static void draw_roof(plot_frame *f, const xy_axes *a, const plot_point corners[3]) {
    plot_canvas_clip(f->canvas, a->area);
    plot_polyline(f->canvas, corners, 3, ROOF_WIDTH, roof_color);
    plot_canvas_unclip(f->canvas);
}

/* Ceiling names: "HBM3 3 TB/s", "fp16 tensor 680 TFLOP/s". */
static void ceiling_text(const char *name, double value, const char *unit, char *buf, size_t len) {
    char number[64];
    plot_format_si(value, unit, number, sizeof number);
    snprintf(buf, len, "%s%s%s", plot_has_text(name) ? name : "", plot_has_text(name) ? " " : "",
             number);
}

/* Labels the slope (along it, above) and the flat roof (above it, right of the ridge). */
static void label_roof(plot_frame *f, const xy_axes *a, const plot_point corners[3],
                       plot_obstacles *o) {
    const plot_chart *c = f->chart;
    char text[PLOT_LINE_BYTES];
    enum { GAP = 5, SLOPE_SPOTS = 5 };
    double angle = atan2(corners[0].y - corners[1].y, corners[1].x - corners[0].x);
    plot_text_style along = plot_style(PLOT_NOTE_SIZE + 1, roof_color, PLOT_ALIGN_CENTER,
                                       PLOT_VALIGN_BOTTOM, angle * 180 / PLOT_PI);
    plot_label_spot slope[SLOPE_SPOTS];
    /* The part of the slope inside the area. */
    double t0 =
        corners[0].y > a->area.y1 ? (corners[0].y - a->area.y1) / (corners[0].y - corners[1].y) : 0;
    for (int i = 0; i < SLOPE_SPOTS; i++) {
        double t = t0 + (1 - t0) * (0.25 + 0.12 * i);
        slope[i] = (plot_label_spot){
            corners[0].x + t * (corners[1].x - corners[0].x) - GAP * sin(angle),
            corners[0].y + t * (corners[1].y - corners[0].y) - GAP * cos(angle), along, 0.5 * i};
    }
    ceiling_text(c->bandwidth_label, c->bandwidth_bytes_per_s, "B/s", text, sizeof text);
    plot_place_label(f, a->area, o, slope, SLOPE_SPOTS, text);

    plot_text_style above =
        plot_style(PLOT_NOTE_SIZE + 1, roof_color, PLOT_ALIGN_END, PLOT_VALIGN_BOTTOM, 0);
    plot_text_style below = above;
    below.valign = PLOT_VALIGN_TOP;
    plot_label_spot flat[4] = {{a->area.x1 - 8, corners[1].y - GAP, above, 0},
                               {corners[1].x + 12, corners[1].y - GAP, above, 1},
                               {a->area.x1 - 8, corners[1].y + GAP, below, 2},
                               {corners[1].x + 12, corners[1].y + GAP, below, 3}};
    flat[1].style.align = flat[3].style.align = PLOT_ALIGN_START;
    ceiling_text(c->flops_label, c->peak_flops_per_s, "FLOP/s", text, sizeof text);
    plot_place_label(f, a->area, o, flat, 4, text);
}

/* Labels a point on one side of it, preferring close spots over far ones. */
static void label_point(plot_frame *f, const xy_axes *a, plot_point p, const char *name,
                        plot_obstacles *o) {
    enum { N_DIRECTIONS = 8, RINGS = 2 };
    static const struct {
        double dx, dy;
        plot_align align;
        plot_valign valign;
    } directions[N_DIRECTIONS] = {
        {1, 0, PLOT_ALIGN_START, PLOT_VALIGN_MIDDLE},
        {-1, 0, PLOT_ALIGN_END, PLOT_VALIGN_MIDDLE},
        {0.7, -0.7, PLOT_ALIGN_START, PLOT_VALIGN_BOTTOM},
        {0.7, 0.7, PLOT_ALIGN_START, PLOT_VALIGN_TOP},
        {-0.7, -0.7, PLOT_ALIGN_END, PLOT_VALIGN_BOTTOM},
        {-0.7, 0.7, PLOT_ALIGN_END, PLOT_VALIGN_TOP},
        {0, -1, PLOT_ALIGN_CENTER, PLOT_VALIGN_BOTTOM},
        {0, 1, PLOT_ALIGN_CENTER, PLOT_VALIGN_TOP},
    };
    plot_label_spot spots[N_DIRECTIONS * RINGS];
    for (int ring = 0; ring < RINGS; ring++)
        for (int d = 0; d < N_DIRECTIONS; d++) {
            double distance = POINT_RADIUS + 5 + ring * 16;
            plot_text_style style = plot_style(POINT_LABEL_SIZE, plot_text_color,
                                               directions[d].align, directions[d].valign, 0);
            spots[ring * N_DIRECTIONS + d] =
                (plot_label_spot){p.x + directions[d].dx * distance,
                                  p.y + directions[d].dy * distance, style, 0.2 * d + 6.0 * ring};
        }
    int taken = plot_place_label(f, a->area, o, spots, N_DIRECTIONS * RINGS, name);
    if (taken >= N_DIRECTIONS) {
        /* A far label gets a leader line from the marker towards it. */
        const plot_label_spot *s = &spots[taken];
        double dx = s->x - p.x, dy = s->y - p.y, length = hypot(dx, dy);
        plot_line(f->canvas,
                  (plot_point){p.x + dx / length * (POINT_RADIUS + 2),
                               p.y + dy / length * (POINT_RADIUS + 2)},
                  (plot_point){s->x - dx / length * 3, s->y - dy / length * 3}, 1,
                  plot_muted_text_color);
    }
}

static plot_point point_position(const xy_axes *a, const plot_roofline_point *p) {
    return (plot_point){plot_axis_map(&a->x, p->intensity), plot_axis_map(&a->y, p->flops_per_s)};
}

/* The roof and every point's marker, which labels should not cover. */
static void roofline_obstacles(const plot_chart *c, const xy_axes *a, const plot_point corners[3],
                               plot_obstacles *o) {
    if (has_roof(c)) {
        plot_obstacles_add_segment(o, corners[0], corners[1]);
        plot_obstacles_add_segment(o, corners[1], corners[2]);
    }
    for (size_t i = 0; i < c->n_points; i++) {
        if (!point_drawable(&c->points[i])) continue;
        plot_point p = point_position(a, &c->points[i]);
        double r = POINT_RADIUS + 3;
        plot_obstacles_add_rect(o, (plot_rect){p.x - r, p.y - r, p.x + r, p.y + r});
    }
    plot_add_reference_obstacles(c, a->area, &a->y, o);
}

/* Draws the points with their labels; returns how many were drawn. */
static size_t draw_points(plot_frame *f, const xy_axes *a, plot_obstacles *o) {
    const plot_chart *c = f->chart;
    size_t drawn = 0;
    for (size_t i = 0; i < c->n_points; i++) {
        const plot_roofline_point *p = &c->points[i];
        if (!point_drawable(p)) continue;
        plot_point at = point_position(a, p);
        plot_draw_marker(f->canvas, plot_series_marker(i), at, POINT_RADIUS, plot_series_color(i));
        if (plot_has_text(p->name)) label_point(f, a, at, p->name, o);
        drawn++;
    }
    return drawn;
}

static int draw_roofline(plot_frame *f, plot_layout *layout) {
    const plot_chart *c = f->chart;
    xy_axes a = {0};
    fit_roofline_axes(c, &a);
    layout_numeric(f, 0, &a);
    plot_point corners[3] = {{0, 0}, {0, 0}, {0, 0}};
    if (has_roof(c)) {
        roof_corners(c, &a, corners);
        shade_under_roof(f, &a, corners);
    }
    plot_draw_grid(f->canvas, a.area, &a.x, &a.x_ticks, &a.y, &a.y_ticks);
    if (has_roof(c)) draw_roof(f, &a, corners);
    plot_obstacles o = {0};
    roofline_obstacles(c, &a, corners, &o);
    plot_draw_reference_lines(f, a.area, &a.y, &o);
    if (has_roof(c)) label_roof(f, &a, corners, &o);
    if (!draw_points(f, &a, &o) && !has_roof(c)) plot_draw_note(f, a.area, "no data");
    draw_axes_and_labels(f, &a, true, plot_x_tick_labels_height(f->font));
    export_layout(&a, layout);
    bool ok = !o.failed;
    plot_obstacles_free(&o);
    return ok ? 0 : -1;
}

int plot_draw_roofline(plot_frame *f, plot_layout *layout) {
    /* Log-log always, and axis labels that say what a roofline's axes are unless given. */
    plot_chart labelled = *f->chart;
    if (!plot_has_text(labelled.x_label)) labelled.x_label = "arithmetic intensity (FLOP/byte)";
    if (!plot_has_text(labelled.y_label)) labelled.y_label = "performance (FLOP/s)";
    labelled.x_log = labelled.y_log = true;
    plot_frame frame = *f;
    frame.chart = &labelled;
    return draw_roofline(&frame, layout);
}
