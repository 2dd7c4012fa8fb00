/* What the charts on x/y axes share: data ranges, the plot area and its axes, the legend. */
#include <math.h>
#include <stdlib.h>

#include "tools/plot_internal.h"

plot_range plot_range_empty(void) { return (plot_range){NAN, NAN}; }

void plot_range_add(plot_range *r, double value) {
    if (isnan(r->lo) || value < r->lo) r->lo = value;
    if (isnan(r->hi) || value > r->hi) r->hi = value;
}

void plot_range_add_accepted(plot_range *r, bool log, const double *values, size_t n) {
    for (size_t i = 0; values && i < n; i++)
        if (plot_axis_accepts(log, values[i])) plot_range_add(r, values[i]);
}

void plot_place_area(const plot_frame *f, double x_labels_height, double right_reserve,
                     double min_left, plot_xy_axes *a) {
    const plot_chart *c = f->chart;
    double axis_label_room = plot_text_height(f->font, PLOT_AXIS_LABEL_SIZE) + PLOT_AXIS_LABEL_GAP;
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
static void make_x_ticks(const plot_frame *f, plot_xy_axes *a) {
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

void plot_layout_numeric(const plot_frame *f, double right_reserve, plot_xy_axes *a) {
    plot_place_area(f, plot_x_tick_labels_height(f->font), right_reserve, 0, a);
    make_x_ticks(f, a);
}

void plot_draw_xy_axes(plot_frame *f, const plot_xy_axes *a, bool numeric_x,
                       double x_labels_height) {
    plot_draw_axes(f, a->area, &a->x, numeric_x ? &a->x_ticks : NULL, &a->y, &a->y_ticks);
    double y_label_x = a->area.x0 - plot_y_tick_labels_width(f->font, &a->y_ticks) -
                       PLOT_AXIS_LABEL_GAP - plot_text_height(f->font, PLOT_AXIS_LABEL_SIZE);
    plot_draw_axis_labels(f, a->area, a->area.y1 + 1 + x_labels_height + PLOT_AXIS_LABEL_GAP,
                          fmax(y_label_x, PLOT_MARGIN));
}

void plot_export_layout(const plot_xy_axes *a, plot_layout *layout) {
    *layout = (plot_layout){a->area.x0, a->area.y0, a->area.x1, a->area.y1, a->x, a->y};
}

plot_legend_entry *plot_legend_entries(const plot_chart *c, size_t *n, bool *failed) {
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

bool plot_legend_goes_outside(const plot_frame *f, const plot_obstacles *obstacles,
                              const plot_xy_axes *a, plot_point size, plot_point *inside_at) {
    double hidden = plot_place_legend(obstacles, a->area, size, inside_at);
    return hidden > 0 && size.x + PLOT_LEGEND_OUTSIDE_GAP <= 0.35 * f->canvas->width;
}
