/* Rooflines: kernels placed under the memory-bandwidth slope and the compute ceiling. */
#include <math.h>
#include <stdio.h>

#include "tools/plot_internal.h"

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
static void fit_roofline_axes(const plot_chart *c, plot_xy_axes *a) {
    plot_range x = plot_range_empty(), y = plot_range_empty();
    for (size_t i = 0; i < c->n_points; i++)
        if (point_drawable(&c->points[i]))
            plot_range_add(&x, c->points[i].intensity),
                plot_range_add(&y, c->points[i].flops_per_s);
    if (has_roof(c)) {
        double ridge = ridge_intensity(c);
        plot_range_add(&x, ridge / 100), plot_range_add(&x, ridge * 10);
        plot_range_add(&y, c->peak_flops_per_s);
        plot_range_add(&y, c->bandwidth_bytes_per_s * x.lo);
    }
    for (size_t i = 0; i < c->n_reference_lines; i++)
        if (plot_axis_accepts(true, c->reference_lines[i].y))
            plot_range_add(&y, c->reference_lines[i].y);
    plot_axis_fit(&a->x, x.lo, x.hi, true, PLOT_DATA_PAD);
    plot_axis_fit(&a->y, y.lo, y.hi, true, 0.06);
}

/* The roof's corners: where the slope enters at the left edge, the ridge, the right edge. */
static void roof_corners(const plot_chart *c, const plot_xy_axes *a, plot_point corners[3]) {
    double ridge = ridge_intensity(c);
    corners[0] = (plot_point){plot_axis_map(&a->x, a->x.lo),
                              plot_axis_map(&a->y, c->bandwidth_bytes_per_s * a->x.lo)};
    corners[1] =
        (plot_point){plot_axis_map(&a->x, ridge), plot_axis_map(&a->y, c->peak_flops_per_s)};
    corners[2] = (plot_point){plot_axis_map(&a->x, a->x.hi), corners[1].y};
}

/* Shades what the roof makes attainable: everything below it. */
static void shade_under_roof(plot_frame *f, const plot_xy_axes *a, const plot_point corners[3]) {
    plot_point under[5] = {{corners[0].x, fmax(corners[0].y, a->area.y1)},
                           corners[0],
                           corners[1],
                           corners[2],
                           {corners[2].x, a->area.y1}};
    plot_canvas_clip(f->canvas, a->area);
    plot_fill_polygon(f->canvas, under, 5, attainable_color);
    plot_canvas_unclip(f->canvas);
}

static void draw_roof(plot_frame *f, const plot_xy_axes *a, const plot_point corners[3]) {
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
static void label_roof(plot_frame *f, const plot_xy_axes *a, const plot_point corners[3],
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
    /* A slope that left the doubles' range (its bottom corner at an infinite pixel) has no
     * place for a label (found by tests/fuzz/fuzz_plot.c). */
    bool slope_labelled = isfinite(t0) && isfinite(angle) && isfinite(corners[0].x) &&
                          isfinite(corners[0].y) && isfinite(corners[1].x) && isfinite(corners[1].y);
    for (int i = 0; i < SLOPE_SPOTS && slope_labelled; i++) {
        double t = t0 + (1 - t0) * (0.25 + 0.12 * i);
        slope[i] = (plot_label_spot){
            corners[0].x + t * (corners[1].x - corners[0].x) - GAP * sin(angle),
            corners[0].y + t * (corners[1].y - corners[0].y) - GAP * cos(angle), along, 0.5 * i};
    }
    ceiling_text(c->bandwidth_label, c->bandwidth_bytes_per_s, "B/s", text, sizeof text);
    if (slope_labelled) plot_place_label(f, a->area, o, slope, SLOPE_SPOTS, text);

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
static void label_point(plot_frame *f, const plot_xy_axes *a, plot_point p, const char *name,
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

static plot_point point_position(const plot_xy_axes *a, const plot_roofline_point *p) {
    return (plot_point){plot_axis_map(&a->x, p->intensity), plot_axis_map(&a->y, p->flops_per_s)};
}

/* The roof and every point's marker, which labels should not cover. */
static void roofline_obstacles(const plot_chart *c, const plot_xy_axes *a,
                               const plot_point corners[3], plot_obstacles *o) {
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
static size_t draw_points(plot_frame *f, const plot_xy_axes *a, plot_obstacles *o) {
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
    plot_xy_axes a = {0};
    fit_roofline_axes(c, &a);
    plot_layout_numeric(f, 0, &a);
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
    plot_draw_xy_axes(f, &a, true, plot_x_tick_labels_height(f->font));
    plot_export_layout(&a, layout);
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
