/*
 * The plot library's frame: palette, markers, legend, titles, axes and the placement of labels
 * where they hide the least, shared by every chart kind; and the entry point that checks a
 * chart, draws it and writes the PNG.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/plot_internal.h"

const plot_color plot_text_color = {0x22, 0x22, 0x22};
const plot_color plot_muted_text_color = {0x5f, 0x5f, 0x5f};
const plot_color plot_frame_color = {0x4d, 0x4d, 0x4d};
const plot_color plot_grid_color = {0xe2, 0xe2, 0xe2};
const plot_color plot_minor_grid_color = {0xf2, 0xf2, 0xf2};
static const plot_color white = {0xff, 0xff, 0xff};
static const plot_color legend_border_color = {0xc8, 0xc8, 0xc8};

/* Okabe & Ito's colour-blind-safe palette, the most distinct on white first; its yellow, too
 * faint on white, is replaced by grey. */
static const plot_color palette[] = {
    {0x00, 0x72, 0xb2}, /* blue */
    {0xd5, 0x5e, 0x00}, /* vermillion */
    {0x00, 0x9e, 0x73}, /* bluish green */
    {0xcc, 0x79, 0xa7}, /* reddish purple */
    {0xe6, 0x9f, 0x00}, /* orange */
    {0x56, 0xb4, 0xe9}, /* sky blue */
    {0x00, 0x00, 0x00}, /* black */
    {0x99, 0x99, 0x99}, /* grey */
};

plot_color plot_series_color(size_t index) {
    return palette[index % (sizeof palette / sizeof palette[0])];
}

plot_color plot_background_color(void) { return white; }

plot_marker plot_series_marker(size_t index) { return (plot_marker)(index % 4); }

plot_chart plot_chart_defaults(plot_kind kind) {
    return (plot_chart){.kind = kind, .z_min = NAN, .z_max = NAN};
}

/* ---- obstacles ---- */

static bool grow(void **items, size_t *cap, size_t count, size_t item_size) {
    if (count < *cap) return true;
    size_t new_cap = *cap ? 2 * *cap : 256;
    void *grown = realloc(*items, new_cap * item_size);
    if (!grown) return false;
    *items = grown;
    *cap = new_cap;
    return true;
}

void plot_obstacles_add_point(plot_obstacles *o, plot_point point) {
    if (o->failed) return;
    if (!grow((void **)&o->points, &o->cap_points, o->n_points, sizeof *o->points)) {
        o->failed = true;
        return;
    }
    o->points[o->n_points++] = point;
}

void plot_obstacles_add_segment(plot_obstacles *o, plot_point a, plot_point b) {
    enum { STEP_PIXELS = 3 };
    double length = hypot(b.x - a.x, b.y - a.y);
    int steps = (int)fmin(ceil(length / STEP_PIXELS), 4096);
    for (int i = 0; i <= steps; i++) {
        double t = steps ? (double)i / steps : 0;
        plot_obstacles_add_point(o, (plot_point){a.x + t * (b.x - a.x), a.y + t * (b.y - a.y)});
    }
}

void plot_obstacles_add_rect(plot_obstacles *o, plot_rect rect) {
    if (o->failed) return;
    if (!grow((void **)&o->rects, &o->cap_rects, o->n_rects, sizeof *o->rects)) {
        o->failed = true;
        return;
    }
    o->rects[o->n_rects++] = rect;
}

double plot_obstacles_cost(const plot_obstacles *o, plot_rect r) {
    double cost = 0;
    for (size_t i = 0; i < o->n_points; i++) {
        plot_point p = o->points[i];
        cost += p.x >= r.x0 && p.x <= r.x1 && p.y >= r.y0 && p.y <= r.y1;
    }
    for (size_t i = 0; i < o->n_rects; i++) {
        plot_rect q = o->rects[i];
        double w = fmin(r.x1, q.x1) - fmax(r.x0, q.x0), h = fmin(r.y1, q.y1) - fmax(r.y0, q.y0);
        if (w > 0 && h > 0) cost += w * h / 16;
    }
    return cost;
}

void plot_obstacles_free(plot_obstacles *o) {
    free(o->points);
    free(o->rects);
    *o = (plot_obstacles){0};
}

/* ---- markers and legend ---- */

static void fill_marker(plot_canvas *canvas, plot_marker marker, plot_point c, double r,
                        plot_color color) {
    switch (marker) {
    case PLOT_MARKER_CIRCLE: plot_fill_circle(canvas, c, r, color); break;
    case PLOT_MARKER_SQUARE: {
        double h = r * 0.88;
        plot_fill_rect(canvas, (plot_rect){c.x - h, c.y - h, c.x + h, c.y + h}, color);
        break;
    }
    case PLOT_MARKER_TRIANGLE: {
        double h = r * 1.25;
        plot_point corners[] = {
            {c.x, c.y - h}, {c.x + h * 0.95, c.y + h * 0.65}, {c.x - h * 0.95, c.y + h * 0.65}};
        plot_fill_polygon(canvas, corners, 3, color);
        break;
    }
    case PLOT_MARKER_DIAMOND: {
        double h = r * 1.2;
        plot_point corners[] = {{c.x, c.y - h}, {c.x + h, c.y}, {c.x, c.y + h}, {c.x - h, c.y}};
        plot_fill_polygon(canvas, corners, 4, color);
        break;
    }
    }
}

void plot_draw_marker(plot_canvas *canvas, plot_marker marker, plot_point center, double radius,
                      plot_color color) {
    fill_marker(canvas, marker, center, radius + 1.5, white);
    fill_marker(canvas, marker, center, radius, color);
}

#define LEGEND_PADDING 10.0
#define LEGEND_SAMPLE_WIDTH 32.0
#define LEGEND_PATCH_SIZE 14.0
#define LEGEND_GAP 8.0
#define LEGEND_ROW 1.65 /* row height in em */

static double legend_sample_width(const plot_legend *legend) {
    return legend->patches ? LEGEND_PATCH_SIZE : LEGEND_SAMPLE_WIDTH;
}

plot_point plot_legend_size(const plot_font *font, const plot_legend *legend) {
    double widest = 0;
    for (size_t i = 0; i < legend->n; i++)
        widest =
            fmax(widest, plot_text_width(font, PLOT_LEGEND_SIZE,
                                         legend->entries[i].name ? legend->entries[i].name : ""));
    return (plot_point){2 * LEGEND_PADDING + legend_sample_width(legend) + LEGEND_GAP + widest,
                        2 * LEGEND_PADDING + legend->n * LEGEND_ROW * PLOT_LEGEND_SIZE};
}

void plot_draw_legend(plot_canvas *canvas, const plot_font *font, const plot_legend *legend,
                      plot_point top_left) {
    plot_point size = plot_legend_size(font, legend);
    plot_rect box = {round(top_left.x), round(top_left.y), round(top_left.x + size.x),
                     round(top_left.y + size.y)};
    plot_fill_rect(canvas, box, white);
    plot_stroke_rect(canvas, box, 1, legend_border_color);
    plot_text_style style =
        plot_style(PLOT_LEGEND_SIZE, plot_text_color, PLOT_ALIGN_START, PLOT_VALIGN_MIDDLE, 0);
    double sample_width = legend_sample_width(legend);
    for (size_t i = 0; i < legend->n; i++) {
        const plot_legend_entry *e = &legend->entries[i];
        double x = box.x0 + LEGEND_PADDING;
        double y = box.y0 + LEGEND_PADDING + (i + 0.5) * LEGEND_ROW * PLOT_LEGEND_SIZE;
        if (legend->patches) {
            double h = LEGEND_PATCH_SIZE / 2;
            plot_fill_rect(canvas, (plot_rect){x, round(y) - h, x + 2 * h, round(y) + h}, e->color);
        } else {
            plot_line(canvas, (plot_point){x, y}, (plot_point){x + sample_width, y}, 2.5, e->color);
            if (e->show_marker)
                plot_draw_marker(canvas, e->marker, (plot_point){x + sample_width / 2, y}, 4.5,
                                 e->color);
        }
        plot_draw_text(canvas, font, &style, x + sample_width + LEGEND_GAP, y,
                       e->name ? e->name : "");
    }
}

double plot_place_legend(const plot_obstacles *obstacles, plot_rect area, plot_point size,
                         plot_point *top_left) {
    enum { INSET = 10, CLEARANCE = 6 };
    double left = area.x0 + INSET, right = area.x1 - INSET - size.x;
    double top = area.y0 + INSET, bottom = area.y1 - INSET - size.y;
    double center_x = (area.x0 + area.x1 - size.x) / 2, middle_y = (area.y0 + area.y1 - size.y) / 2;
    /* In order of preference: corners first, then the middles of the edges. */
    const plot_point candidates[] = {{right, top},      {left, top},     {right, bottom},
                                     {left, bottom},    {center_x, top}, {center_x, bottom},
                                     {right, middle_y}, {left, middle_y}};
    double best = INFINITY;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        plot_point p = candidates[i];
        double cost = plot_obstacles_cost(obstacles, (plot_rect){p.x - CLEARANCE, p.y - CLEARANCE,
                                                                 p.x + size.x + CLEARANCE,
                                                                 p.y + size.y + CLEARANCE});
        if (cost < best) best = cost, *top_left = p;
    }
    return best;
}

/* ---- titles, axes and notes ---- */

/* How many of the len bytes of s fit in max bytes without splitting a character. */
static size_t utf8_prefix(const char *s, size_t len, size_t max) {
    if (len <= max) return len;
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80) max--;
    return max;
}

/* Shortens line (in place) with "..." until it is at most max_width wide; true if it did. */
static bool ellipsize(const plot_font *font, double size, char *line, double max_width) {
    if (plot_text_width(font, size, line) <= max_width) return false;
    static const char ellipsis[] = "...";
    size_t len = utf8_prefix(line, strlen(line), PLOT_LINE_BYTES - sizeof ellipsis);
    do {
        while (len > 0 && ((unsigned char)line[--len] & 0xc0) == 0x80) continue;
        memcpy(line + len, ellipsis, sizeof ellipsis);
    } while (len > 0 && plot_text_width(font, size, line) > max_width);
    return true;
}

int plot_wrap_text(const plot_font *font, double size, const char *text, double max_width,
                   int max_lines, plot_text_line *lines, bool *shortened) {
    int n = 0;
    bool cut = false;
    lines[0].text[0] = '\0';
    for (const char *p = text; *p;) {
        while (*p == ' ') p++;
        size_t word = strcspn(p, " ");
        if (!word) break;
        /* The line with the word added, as far as it fits in the buffer. */
        char trial[PLOT_LINE_BYTES];
        size_t used = strlen(lines[n].text), space = used ? 1 : 0;
        size_t room = used + space < sizeof trial ? sizeof trial - 1 - used - space : 0;
        size_t taken = utf8_prefix(p, word, room);
        memcpy(trial, lines[n].text, used);
        memcpy(trial + used, " ", space);
        memcpy(trial + used + space, p, taken);
        trial[used + space + taken] = '\0';
        if (used && n + 1 < max_lines && plot_text_width(font, size, trial) > max_width) {
            lines[++n].text[0] = '\0'; /* the word starts the next line */
            continue;
        }
        memcpy(lines[n].text, trial, sizeof trial);
        p += word;
    }
    int count = lines[n].text[0] ? n + 1 : n;
    for (int i = 0; i < count; i++) cut |= ellipsize(font, size, lines[i].text, max_width);
    if (shortened) *shortened = cut;
    return count;
}

void plot_draw_titles(plot_frame *frame) {
    const plot_chart *chart = frame->chart;
    double width = frame->canvas->width, y = PLOT_MARGIN;
    double max_width = width - 2 * PLOT_MARGIN;
    plot_text_style title =
        plot_style(PLOT_TITLE_SIZE, plot_text_color, PLOT_ALIGN_CENTER, PLOT_VALIGN_TOP, 0);
    title.bold = true;
    plot_text_line lines[2];
    if (plot_has_text(chart->title)) {
        int n = plot_wrap_text(frame->font, title.size, chart->title, max_width, 2, lines, NULL);
        for (int i = 0; i < n; i++) {
            plot_draw_text(frame->canvas, frame->font, &title, width / 2, y, lines[i].text);
            y += plot_text_height(frame->font, title.size) + 2;
        }
    }
    plot_text_style subtitle = title;
    subtitle.size = PLOT_SUBTITLE_SIZE;
    subtitle.color = plot_muted_text_color;
    subtitle.bold = false;
    if (plot_has_text(chart->subtitle)) {
        int n =
            plot_wrap_text(frame->font, subtitle.size, chart->subtitle, max_width, 2, lines, NULL);
        for (int i = 0; i < n; i++) {
            plot_draw_text(frame->canvas, frame->font, &subtitle, width / 2, y, lines[i].text);
            y += plot_text_height(frame->font, subtitle.size);
        }
    }
    frame->title_bottom = y;
}

void plot_draw_axis_labels(plot_frame *frame, plot_rect area, double x_label_y, double y_label_x) {
    const plot_chart *chart = frame->chart;
    plot_text_style style =
        plot_style(PLOT_AXIS_LABEL_SIZE, plot_text_color, PLOT_ALIGN_CENTER, PLOT_VALIGN_TOP, 0);
    plot_text_line line;
    if (plot_has_text(chart->x_label)) {
        plot_wrap_text(frame->font, style.size, chart->x_label, area.x1 - area.x0, 1, &line, NULL);
        plot_draw_text(frame->canvas, frame->font, &style, (area.x0 + area.x1) / 2, x_label_y,
                       line.text);
    }
    if (plot_has_text(chart->y_label)) {
        style.angle = 90;
        plot_wrap_text(frame->font, style.size, chart->y_label, area.y1 - area.y0, 1, &line, NULL);
        plot_draw_text(frame->canvas, frame->font, &style, y_label_x, (area.y0 + area.y1) / 2,
                       line.text);
    }
}

void plot_draw_grid(plot_canvas *canvas, plot_rect area, const plot_axis *x, const plot_ticks *xt,
                    const plot_axis *y, const plot_ticks *yt) {
    for (int i = 0; xt && i < xt->count; i++) {
        double px = floor(plot_axis_map(x, xt->tick[i].value));
        plot_fill_rect(canvas, (plot_rect){px, area.y0, px + 1, area.y1},
                       xt->tick[i].major ? plot_grid_color : plot_minor_grid_color);
    }
    for (int i = 0; yt && i < yt->count; i++) {
        double py = floor(plot_axis_map(y, yt->tick[i].value));
        plot_fill_rect(canvas, (plot_rect){area.x0, py, area.x1, py + 1},
                       yt->tick[i].major ? plot_grid_color : plot_minor_grid_color);
    }
}

#define TICK_LENGTH 6.0
#define MINOR_TICK_LENGTH 3.0
#define TICK_LABEL_GAP 4.0

double plot_x_tick_labels_height(const plot_font *font) {
    return TICK_LENGTH + TICK_LABEL_GAP + plot_text_height(font, PLOT_TICK_SIZE);
}

double plot_y_tick_labels_width(const plot_font *font, const plot_ticks *ticks) {
    double widest = 0;
    for (int i = 0; i < ticks->count; i++)
        if (ticks->tick[i].major)
            widest = fmax(widest, plot_text_width(font, PLOT_TICK_SIZE, ticks->tick[i].label));
    return TICK_LENGTH + TICK_LABEL_GAP + widest;
}

void plot_draw_axes(plot_frame *frame, plot_rect area, const plot_axis *x, const plot_ticks *xt,
                    const plot_axis *y, const plot_ticks *yt) {
    plot_canvas *canvas = frame->canvas;
    plot_stroke_rect(canvas, (plot_rect){area.x0 - 1, area.y0 - 1, area.x1 + 1, area.y1 + 1}, 1,
                     plot_frame_color);
    plot_text_style style =
        plot_style(PLOT_TICK_SIZE, plot_text_color, PLOT_ALIGN_CENTER, PLOT_VALIGN_TOP, 0);
    for (int i = 0; xt && i < xt->count; i++) {
        const plot_tick *t = &xt->tick[i];
        double px = floor(plot_axis_map(x, t->value));
        double length = t->major ? TICK_LENGTH : MINOR_TICK_LENGTH;
        plot_fill_rect(canvas, (plot_rect){px, area.y1 + 1, px + 1, area.y1 + 1 + length},
                       plot_frame_color);
        if (t->major)
            plot_draw_text(canvas, frame->font, &style, px + 0.5,
                           area.y1 + 1 + TICK_LENGTH + TICK_LABEL_GAP, t->label);
    }
    style.align = PLOT_ALIGN_END;
    style.valign = PLOT_VALIGN_MIDDLE;
    for (int i = 0; yt && i < yt->count; i++) {
        const plot_tick *t = &yt->tick[i];
        double py = floor(plot_axis_map(y, t->value));
        double length = t->major ? TICK_LENGTH : MINOR_TICK_LENGTH;
        plot_fill_rect(canvas, (plot_rect){area.x0 - 1 - length, py, area.x0 - 1, py + 1},
                       plot_frame_color);
        if (t->major)
            plot_draw_text(canvas, frame->font, &style, area.x0 - 1 - TICK_LENGTH - TICK_LABEL_GAP,
                           py + 0.5, t->label);
    }
}

void plot_draw_note(plot_frame *frame, plot_rect area, const char *text) {
    plot_text_style style = plot_style(PLOT_AXIS_LABEL_SIZE, plot_muted_text_color,
                                       PLOT_ALIGN_CENTER, PLOT_VALIGN_MIDDLE, 0);
    plot_draw_text(frame->canvas, frame->font, &style, (area.x0 + area.x1) / 2,
                   (area.y0 + area.y1) / 2, text);
}

void plot_add_reference_obstacles(const plot_chart *chart, plot_rect area, const plot_axis *y,
                                  plot_obstacles *obstacles) {
    for (size_t i = 0; i < chart->n_reference_lines; i++) {
        double value = chart->reference_lines[i].y;
        if (!plot_axis_accepts(y->log, value)) continue;
        double py = plot_axis_map(y, value);
        if (py >= area.y0 && py <= area.y1)
            plot_obstacles_add_segment(obstacles, (plot_point){area.x0, py},
                                       (plot_point){area.x1, py});
    }
}

int plot_place_label(plot_frame *frame, plot_rect area, plot_obstacles *obstacles,
                     const plot_label_spot *spots, size_t n, const char *text) {
    double best_cost = INFINITY;
    size_t best = 0;
    for (size_t i = 0; i < n; i++) {
        plot_rect box = plot_text_box(frame->font, &spots[i].style, spots[i].x, spots[i].y, text);
        double outside = (box.x1 - box.x0) * (box.y1 - box.y0) -
                         fmax(0, fmin(box.x1, area.x1) - fmax(box.x0, area.x0)) *
                             fmax(0, fmin(box.y1, area.y1) - fmax(box.y0, area.y0));
        /* A pixel outside the area costs as much as covering a point of data. */
        double cost = plot_obstacles_cost(obstacles, box) + outside + spots[i].extra_cost;
        if (cost < best_cost) best_cost = cost, best = i;
    }
    const plot_label_spot *spot = &spots[best];
    plot_draw_text(frame->canvas, frame->font, &spot->style, spot->x, spot->y, text);
    plot_obstacles_add_rect(obstacles,
                            plot_text_box(frame->font, &spot->style, spot->x, spot->y, text));
    return (int)best;
}

/* The label of a reference line at py: above or below it, at its right or left end. */
static void label_reference_line(plot_frame *frame, plot_rect area, double py, const char *label,
                                 plot_obstacles *obstacles) {
    enum { INSET = 8, GAP = 4 };
    plot_text_style above =
        plot_style(PLOT_NOTE_SIZE, plot_frame_color, PLOT_ALIGN_END, PLOT_VALIGN_BOTTOM, 0);
    plot_text_style below = above;
    below.valign = PLOT_VALIGN_TOP;
    plot_label_spot spots[4] = {{area.x1 - INSET, py - GAP, above, 0},
                                {area.x0 + INSET, py - GAP, above, 0},
                                {area.x1 - INSET, py + GAP, below, 0},
                                {area.x0 + INSET, py + GAP, below, 0}};
    spots[1].style.align = spots[3].style.align = PLOT_ALIGN_START;
    plot_place_label(frame, area, obstacles, spots, 4, label);
}

void plot_draw_reference_lines(plot_frame *frame, plot_rect area, const plot_axis *y,
                               plot_obstacles *obstacles) {
    const plot_chart *chart = frame->chart;
    plot_canvas_clip(frame->canvas, area);
    for (size_t i = 0; i < chart->n_reference_lines; i++) {
        const plot_reference_line *ref = &chart->reference_lines[i];
        if (!plot_axis_accepts(y->log, ref->y)) continue;
        double py = plot_axis_map(y, ref->y);
        if (py < area.y0 || py > area.y1) continue;
        plot_dashed_line(frame->canvas, (plot_point){area.x0, py}, (plot_point){area.x1, py}, 1.5,
                         9, 5, plot_frame_color);
        if (plot_has_text(ref->label)) label_reference_line(frame, area, py, ref->label, obstacles);
    }
    plot_canvas_unclip(frame->canvas);
}

/* ---- checking and drawing a chart ---- */

/* What is wrong with a chart given in C, or NULL. */
static const char *chart_problem(const plot_chart *c) {
    if ((int)c->kind < PLOT_LINE || c->kind > PLOT_ROOFLINE) return "unknown chart kind";
    if (c->width && (c->width < PLOT_MIN_SIZE || c->width > PLOT_MAX_SIZE))
        return "width is out of range";
    if (c->height && (c->height < PLOT_MIN_SIZE || c->height > PLOT_MAX_SIZE))
        return "height is out of range";
    if ((c->n_series && !c->series) || (c->n_reference_lines && !c->reference_lines) ||
        (c->n_x_ticks && !c->x_ticks) || (c->n_y_ticks && !c->y_ticks) ||
        (c->n_categories && !c->categories) || (c->n_points && !c->points))
        return "an array with a count has no data";
    for (size_t i = 0; i < c->n_series; i++)
        if (c->series[i].n && (!c->series[i].y || (c->kind != PLOT_BAR && !c->series[i].x)))
            return "a series with a count has no data";
    if (c->kind == PLOT_HEATMAP && c->rows && c->cols && !c->matrix) return "the matrix is NULL";
    return NULL;
}

static int draw_chart(plot_frame *frame, plot_layout *layout) {
    plot_draw_titles(frame);
    switch (frame->chart->kind) {
    case PLOT_LINE: return plot_draw_line_chart(frame, layout);
    case PLOT_BAR: return plot_draw_bar_chart(frame, layout);
    case PLOT_HEATMAP: return plot_draw_heatmap(frame, layout);
    case PLOT_ROOFLINE: return plot_draw_roofline(frame, layout);
    }
    return -1;
}

int plot_chart_write_png(const plot_chart *chart, const plot_font *font, const char *path,
                         plot_layout *layout, char *err, size_t err_len) {
    const char *problem = chart_problem(chart);
    if (problem) {
        snprintf(err, err_len, "bad chart: %s", problem);
        return -1;
    }
    plot_canvas canvas;
    if (!plot_canvas_init(&canvas, chart->width ? chart->width : PLOT_DEFAULT_WIDTH,
                          chart->height ? chart->height : PLOT_DEFAULT_HEIGHT, white)) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    plot_frame frame = {.chart = chart, .font = font, .canvas = &canvas};
    plot_layout unused;
    int rc = 0;
    if (draw_chart(&frame, layout ? layout : &unused) != 0) {
        snprintf(err, err_len, "out of memory");
        rc = -1;
    } else if (errno = 0, !plot_canvas_write_png(&canvas, path)) {
        snprintf(err, err_len, "cannot write %s: %s", path, errno ? strerror(errno) : "error");
        rc = -1;
    }
    plot_canvas_free(&canvas);
    return rc;
}
