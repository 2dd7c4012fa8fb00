/* The canvas of the plot library: an RGB image with anti-aliased shapes, written as PNG. */
#include <math.h>
#include <stdlib.h>

#include <stb/stb_image_write.h>

#include "tools/plot_internal.h"

bool plot_canvas_init(plot_canvas *canvas, int width, int height, plot_color background) {
    *canvas = (plot_canvas){.width = width, .height = height};
    size_t pixels = (size_t)width * (size_t)height;
    canvas->rgb = malloc(pixels * 3);
    canvas->coverage = calloc(pixels, sizeof(float));
    if (!canvas->rgb || !canvas->coverage) {
        plot_canvas_free(canvas);
        return false;
    }
    for (size_t i = 0; i < pixels; i++) {
        canvas->rgb[3 * i] = background.r;
        canvas->rgb[3 * i + 1] = background.g;
        canvas->rgb[3 * i + 2] = background.b;
    }
    plot_canvas_unclip(canvas);
    return true;
}

void plot_canvas_free(plot_canvas *canvas) {
    free(canvas->rgb);
    free(canvas->coverage);
    *canvas = (plot_canvas){0};
}

bool plot_canvas_write_png(const plot_canvas *canvas, const char *path) {
    return stbi_write_png(path, canvas->width, canvas->height, 3, canvas->rgb, canvas->width * 3) !=
           0;
}

void plot_canvas_clip(plot_canvas *canvas, plot_rect clip) { canvas->clip = clip; }

void plot_canvas_unclip(plot_canvas *canvas) {
    canvas->clip = (plot_rect){0, 0, canvas->width, canvas->height};
}

void plot_blend(plot_canvas *canvas, int x, int y, double alpha, plot_color color) {
    if (!(alpha > 0) || x < 0 || y < 0 || x >= canvas->width || y >= canvas->height) return;
    if (x + 0.5 < canvas->clip.x0 || x + 0.5 > canvas->clip.x1 || y + 0.5 < canvas->clip.y0 ||
        y + 0.5 > canvas->clip.y1)
        return;
    if (alpha > 1) alpha = 1;
    uint8_t *p = canvas->rgb + 3 * ((size_t)y * (size_t)canvas->width + (size_t)x);
    const uint8_t src[3] = {color.r, color.g, color.b};
    for (int c = 0; c < 3; c++) p[c] = (uint8_t)lrint(p[c] + (src[c] - p[c]) * alpha);
}

/* The pixel range [*lo, *hi) touched by [a, b], within [0, limit). False when empty. A NaN end
 * counts as 0, so that no NaN reaches a cast to int (found by tests/fuzz/fuzz_plot.c). */
static bool pixel_span(double a, double b, int limit, int *lo, int *hi) {
    double first = floor(a), last = ceil(b);
    *lo = !(first > 0) ? 0 : first > limit ? limit : (int)first;
    *hi = !(last > 0) ? 0 : last > limit ? limit : (int)last;
    return *lo < *hi;
}

static double overlap(double a0, double a1, double b0, double b1) {
    double lo = a0 > b0 ? a0 : b0, hi = a1 < b1 ? a1 : b1;
    return hi > lo ? hi - lo : 0;
}

void plot_fill_rect(plot_canvas *canvas, plot_rect rect, plot_color color) {
    int x0, x1, y0, y1;
    if (!pixel_span(rect.x0, rect.x1, canvas->width, &x0, &x1) ||
        !pixel_span(rect.y0, rect.y1, canvas->height, &y0, &y1))
        return;
    for (int y = y0; y < y1; y++) {
        double cover_y = overlap(rect.y0, rect.y1, y, y + 1);
        for (int x = x0; x < x1; x++)
            plot_blend(canvas, x, y, cover_y * overlap(rect.x0, rect.x1, x, x + 1), color);
    }
}

void plot_stroke_rect(plot_canvas *canvas, plot_rect r, double width, plot_color color) {
    plot_fill_rect(canvas, (plot_rect){r.x0, r.y0, r.x1, r.y0 + width}, color);
    plot_fill_rect(canvas, (plot_rect){r.x0, r.y1 - width, r.x1, r.y1}, color);
    plot_fill_rect(canvas, (plot_rect){r.x0, r.y0 + width, r.x0 + width, r.y1 - width}, color);
    plot_fill_rect(canvas, (plot_rect){r.x1 - width, r.y0 + width, r.x1, r.y1 - width}, color);
}

static double distance_to_segment(double px, double py, plot_point a, plot_point b) {
    double dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy;
    double t = len2 > 0 ? ((px - a.x) * dx + (py - a.y) * dy) / len2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return hypot(px - (a.x + t * dx), py - (a.y + t * dy));
}

/* The pixels a shape may touch: its bounding box grown by reach, within the canvas. */
typedef struct {
    int x0, x1, y0, y1;
} pixel_box;

static bool shape_box(const plot_canvas *canvas, double x0, double y0, double x1, double y1,
                      double reach, pixel_box *box) {
    return pixel_span(x0 - reach, x1 + reach, canvas->width, &box->x0, &box->x1) &&
           pixel_span(y0 - reach, y1 + reach, canvas->height, &box->y0, &box->y1);
}

/* Adds one segment's coverage into the scratch buffer (max, so joins are not drawn twice). */
static void cover_segment(plot_canvas *canvas, plot_point a, plot_point b, double half_width,
                          pixel_box *dirty) {
    pixel_box box;
    if (!shape_box(canvas, fmin(a.x, b.x), fmin(a.y, b.y), fmax(a.x, b.x), fmax(a.y, b.y),
                   half_width + 1, &box))
        return;
    for (int y = box.y0; y < box.y1; y++)
        for (int x = box.x0; x < box.x1; x++) {
            double cover = half_width + 0.5 - distance_to_segment(x + 0.5, y + 0.5, a, b);
            float *c = &canvas->coverage[(size_t)y * (size_t)canvas->width + (size_t)x];
            if (cover > *c) *c = (float)(cover > 1 ? 1 : cover);
        }
    if (box.x0 < dirty->x0) dirty->x0 = box.x0;
    if (box.x1 > dirty->x1) dirty->x1 = box.x1;
    if (box.y0 < dirty->y0) dirty->y0 = box.y0;
    if (box.y1 > dirty->y1) dirty->y1 = box.y1;
}

void plot_polyline(plot_canvas *canvas, const plot_point *points, size_t n, double width,
                   plot_color color) {
    pixel_box dirty = {canvas->width, 0, canvas->height, 0};
    if (n == 1) cover_segment(canvas, points[0], points[0], width / 2, &dirty);
    for (size_t i = 0; i + 1 < n; i++)
        cover_segment(canvas, points[i], points[i + 1], width / 2, &dirty);
    for (int y = dirty.y0; y < dirty.y1; y++)
        for (int x = dirty.x0; x < dirty.x1; x++) {
            float *c = &canvas->coverage[(size_t)y * (size_t)canvas->width + (size_t)x];
            plot_blend(canvas, x, y, *c, color);
            *c = 0;
        }
}

void plot_line(plot_canvas *canvas, plot_point a, plot_point b, double width, plot_color color) {
    plot_polyline(canvas, (plot_point[]){a, b}, 2, width, color);
}

void plot_dashed_line(plot_canvas *canvas, plot_point a, plot_point b, double width, double dash,
                      double gap, plot_color color) {
    double length = hypot(b.x - a.x, b.y - a.y);
    if (!(length > 0) || !(dash > 0) || !(gap >= 0)) return;
    double ux = (b.x - a.x) / length, uy = (b.y - a.y) / length;
    for (double s = 0; s < length; s += dash + gap) {
        double e = fmin(s + dash, length);
        plot_line(canvas, (plot_point){a.x + ux * s, a.y + uy * s},
                  (plot_point){a.x + ux * e, a.y + uy * e}, width, color);
    }
}

void plot_fill_circle(plot_canvas *canvas, plot_point center, double radius, plot_color color) {
    pixel_box box;
    if (!shape_box(canvas, center.x, center.y, center.x, center.y, radius + 1, &box)) return;
    for (int y = box.y0; y < box.y1; y++)
        for (int x = box.x0; x < box.x1; x++)
            plot_blend(canvas, x, y, radius + 0.5 - hypot(x + 0.5 - center.x, y + 0.5 - center.y),
                       color);
}

static bool inside_polygon(const plot_point *p, size_t n, double x, double y) {
    bool inside = false;
    for (size_t i = 0, j = n - 1; i < n; j = i++)
        if ((p[i].y > y) != (p[j].y > y) &&
            x < p[j].x + (y - p[j].y) * (p[i].x - p[j].x) / (p[i].y - p[j].y))
            inside = !inside;
    return inside;
}

void plot_fill_polygon(plot_canvas *canvas, const plot_point *points, size_t n, plot_color color) {
    if (n < 3) return;
    double x0 = points[0].x, x1 = x0, y0 = points[0].y, y1 = y0;
    for (size_t i = 1; i < n; i++) {
        x0 = fmin(x0, points[i].x), x1 = fmax(x1, points[i].x);
        y0 = fmin(y0, points[i].y), y1 = fmax(y1, points[i].y);
    }
    pixel_box box;
    if (!shape_box(canvas, x0, y0, x1, y1, 1, &box)) return;
    enum { SAMPLES = 4 };
    for (int y = box.y0; y < box.y1; y++)
        for (int x = box.x0; x < box.x1; x++) {
            int hits = 0;
            for (int sy = 0; sy < SAMPLES; sy++)
                for (int sx = 0; sx < SAMPLES; sx++)
                    hits += inside_polygon(points, n, x + (sx + 0.5) / SAMPLES,
                                           y + (sy + 0.5) / SAMPLES);
            plot_blend(canvas, x, y, (double)hits / (SAMPLES * SAMPLES), color);
        }
}
