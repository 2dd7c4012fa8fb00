/* Line charts: series of points joined by lines, with markers where they fit. */
#include <math.h>
#include <stdlib.h>

#include "tools/plot_internal.h"

#define LINE_WIDTH 2.5
#define MARKER_RADIUS 4.5
#define MIN_MARKER_SPACING 9.0 /* pixels per point below which markers are left out */

/* Pixel positions of a series' points; NaN where a point cannot be drawn. */
static void map_series(const plot_series *s, const plot_xy_axes *a, plot_point *points) {
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
static bool markers_fit(const plot_point *points, size_t n, const plot_xy_axes *a) {
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
static bool line_obstacles(const plot_chart *c, const plot_xy_axes *a, plot_point *points,
                           plot_obstacles *o) {
    for (size_t i = 0; i < c->n_series; i++) {
        map_series(&c->series[i], a, points);
        add_series_obstacles(points, c->series[i].n, o);
    }
    plot_add_reference_obstacles(c, a->area, &a->y, o);
    return !o->failed;
}

static void fit_line_axes(const plot_chart *c, plot_xy_axes *a) {
    plot_range x = plot_range_empty(), y = plot_range_empty();
    for (size_t i = 0; i < c->n_series; i++) {
        const plot_series *s = &c->series[i];
        for (size_t k = 0; k < s->n; k++)
            if (plot_axis_accepts(c->x_log, s->x[k]) && plot_axis_accepts(c->y_log, s->y[k]))
                plot_range_add(&x, s->x[k]), plot_range_add(&y, s->y[k]);
    }
    plot_range_add_accepted(&x, c->x_log, c->x_ticks, c->n_x_ticks);
    plot_range_add_accepted(&y, c->y_log, c->y_ticks, c->n_y_ticks);
    for (size_t i = 0; i < c->n_reference_lines; i++)
        if (plot_axis_accepts(c->y_log, c->reference_lines[i].y))
            plot_range_add(&y, c->reference_lines[i].y);
    plot_axis_fit(&a->x, x.lo, x.hi, c->x_log, PLOT_DATA_PAD);
    /* A linear y axis of positive data starts at zero when zero is near, so heights compare. */
    if (!c->y_log && y.lo >= 0 && y.lo <= 0.3 * y.hi) {
        plot_axis_fit(&a->y, 0, y.hi, false, PLOT_DATA_PAD);
        a->y.lo = 0;
    } else {
        plot_axis_fit(&a->y, y.lo, y.hi, c->y_log, PLOT_DATA_PAD);
    }
}

/*
 * Draws every series, clipped to the area, and notes in the legend entries which have markers.
 * Returns how many points were drawn.
 */
static size_t draw_all_series(plot_frame *f, const plot_xy_axes *a, plot_point *points,
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
    plot_xy_axes a = {0};
    fit_line_axes(c, &a);
    size_t n_entries;
    bool failed;
    plot_legend_entry *entries = plot_legend_entries(c, &n_entries, &failed);
    plot_point *points = failed ? NULL : malloc(longest_series(c) * sizeof *points);
    plot_obstacles obstacles = {0};
    plot_legend legend = {entries, n_entries, false};
    plot_point legend_size = plot_legend_size(f->font, &legend), legend_at = {0, 0};
    plot_layout_numeric(f, 0, &a);
    bool ok = points && line_obstacles(c, &a, points, &obstacles);
    if (ok && n_entries && plot_legend_goes_outside(f, &obstacles, &a, legend_size, &legend_at)) {
        plot_layout_numeric(f, legend_size.x + PLOT_LEGEND_OUTSIDE_GAP, &a);
        legend_at = (plot_point){a.area.x1 + PLOT_LEGEND_OUTSIDE_GAP, a.area.y0};
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
        plot_draw_xy_axes(f, &a, true, plot_x_tick_labels_height(f->font));
        if (n_entries) plot_draw_legend(f->canvas, f->font, &legend, legend_at);
        plot_export_layout(&a, layout);
    }
    plot_obstacles_free(&obstacles);
    free(points);
    free(entries);
    return ok ? 0 : -1;
}
