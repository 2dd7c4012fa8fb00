/* Heatmaps: a matrix of coloured cells with row and column labels and a colour bar. */
#include <math.h>
#include <stdio.h>

#include "tools/plot_internal.h"

#define LABEL_GAP 8.0      /* between the cells and their labels */
#define AXIS_LABEL_GAP 8.0 /* between labels and the axis label */
#define COLUMN_LABEL_ANGLE 45.0
#define COLOR_BAR_GAP 24.0 /* between the cells and the colour bar */
#define COLOR_BAR_WIDTH 22.0
#define TICK_LENGTH 6.0
#define MAX_CELL_ASPECT 2.0 /* width to height, either way; square matrices get square cells */
#define MAX_VALUE_CELLS 600 /* matrices larger than this never print cell values */
#define VALUE_SIZE 13.0
static const plot_color missing_color = {0xdd, 0xdd, 0xdd};

/* Viridis sampled at 9 even steps; colours in between are interpolated. */
static const plot_color viridis[] = {
    {0x44, 0x01, 0x54}, {0x47, 0x2d, 0x7b}, {0x3b, 0x52, 0x8b},
    {0x2c, 0x72, 0x8e}, {0x21, 0x91, 0x8c}, {0x28, 0xae, 0x80},
    {0x5e, 0xc9, 0x62}, {0xad, 0xdc, 0x30}, {0xfd, 0xe7, 0x25},
};

static plot_color color_at(double t) {
    enum { LAST = sizeof viridis / sizeof viridis[0] - 1 };
    t = isnan(t) ? 0 : t < 0 ? 0 : t > 1 ? 1 : t;
    int i = (int)fmin(floor(t * LAST), LAST - 1);
    double f = t * LAST - i;
    plot_color a = viridis[i], b = viridis[i + 1];
    return (plot_color){(uint8_t)lrint(a.r + f * (b.r - a.r)),
                        (uint8_t)lrint(a.g + f * (b.g - a.g)),
                        (uint8_t)lrint(a.b + f * (b.b - a.b))};
}

static bool is_dark(plot_color c) { return 0.299 * c.r + 0.587 * c.g + 0.114 * c.b < 140; }

static const char *label_of(const char *const *labels, size_t i) {
    return labels && labels[i] ? labels[i] : "";
}

typedef struct {
    plot_rect cells; /* the matrix */
    double cell_w, cell_h;
    bool rotated_columns;
    plot_axis z; /* the colour scale, mapped onto the colour bar */
    plot_ticks z_ticks;
    plot_rect bar;
} heatmap_layout;

/* The colour scale: z_min/z_max where given, else the data's range. */
static void fit_color_scale(const plot_chart *c, plot_axis *z) {
    double lo = NAN, hi = NAN;
    for (size_t i = 0; i < c->rows * c->cols; i++) {
        double v = c->matrix[i];
        if (!plot_axis_accepts(false, v)) continue;
        if (isnan(lo) || v < lo) lo = v;
        if (isnan(hi) || v > hi) hi = v;
    }
    if (plot_axis_accepts(false, c->z_min)) lo = c->z_min;
    if (plot_axis_accepts(false, c->z_max)) hi = c->z_max;
    if (!isnan(lo) && !isnan(hi) && lo > hi) hi = lo;
    plot_axis_fit(z, lo, hi, false, 0);
}

static double widest_label(const plot_font *font, double size, const char *const *labels,
                           size_t n) {
    double widest = 0;
    for (size_t i = 0; labels && i < n; i++)
        widest = fmax(widest, plot_text_width(font, size, label_of(labels, i)));
    return widest;
}

/* Height below the cells taken by the column labels, upright or turned. */
static double column_labels_height(const plot_frame *f, bool rotated) {
    const plot_chart *c = f->chart;
    if (!c->col_labels) return 0;
    double widest = widest_label(f->font, PLOT_TICK_SIZE, c->col_labels, c->cols);
    double height = plot_text_height(f->font, PLOT_TICK_SIZE);
    double angle = COLUMN_LABEL_ANGLE * PLOT_PI / 180;
    return LABEL_GAP + (rotated ? widest * sin(angle) + height * cos(angle) : height);
}

/* Room right of the cells for the colour bar, its tick labels and its label. */
static double color_bar_room(const plot_frame *f, const heatmap_layout *h) {
    double room =
        COLOR_BAR_GAP + COLOR_BAR_WIDTH + 1 + plot_y_tick_labels_width(f->font, &h->z_ticks);
    if (plot_has_text(f->chart->z_label))
        room += AXIS_LABEL_GAP + plot_text_height(f->font, PLOT_AXIS_LABEL_SIZE);
    return room;
}

/* Cell sizes for an area, within the aspect limit. */
static void size_cells(const plot_chart *c, double width, double height, heatmap_layout *h) {
    h->cell_w = fmax(width, 1) / (double)c->cols;
    h->cell_h = fmax(height, 1) / (double)c->rows;
    double aspect = c->rows == c->cols ? 1 : MAX_CELL_ASPECT;
    h->cell_w = fmin(h->cell_w, aspect * h->cell_h);
    h->cell_h = fmin(h->cell_h, aspect * h->cell_w);
}

static void layout_heatmap(const plot_frame *f, heatmap_layout *h) {
    const plot_chart *c = f->chart;
    double axis_label = plot_text_height(f->font, PLOT_AXIS_LABEL_SIZE) + AXIS_LABEL_GAP;
    double top = f->title_bottom + 12;
    double left =
        PLOT_MARGIN + (plot_has_text(c->y_label) ? axis_label : 0) +
        (c->row_labels ? widest_label(f->font, PLOT_TICK_SIZE, c->row_labels, c->rows) + LABEL_GAP
                       : 0);
    double bottom_text = PLOT_MARGIN + (plot_has_text(c->x_label) ? axis_label : 0);
    /* The colour bar's ticks depend on its height; a first guess is close enough for its width. */
    h->z.pixel_lo = f->canvas->height - bottom_text;
    h->z.pixel_hi = top;
    plot_axis_ticks(&h->z, true, f->font, PLOT_TICK_SIZE, NULL, 0, &h->z_ticks);
    double right = f->canvas->width - PLOT_MARGIN - color_bar_room(f, h);
    h->rotated_columns = false;
    double bottom = f->canvas->height - bottom_text - column_labels_height(f, false);
    size_cells(c, right - left, bottom - top, h);
    if (c->col_labels &&
        widest_label(f->font, PLOT_TICK_SIZE, c->col_labels, c->cols) > h->cell_w - 4) {
        h->rotated_columns = true;
        bottom = f->canvas->height - bottom_text - column_labels_height(f, true);
        size_cells(c, right - left, bottom - top, h);
    }
    double width = h->cell_w * c->cols, height = h->cell_h * c->rows;
    double x0 = round(left + (right - left - width) / 2);
    h->cells = (plot_rect){x0, round(top), x0 + width, round(top) + height};
    h->bar = (plot_rect){round(h->cells.x1 + COLOR_BAR_GAP), h->cells.y0,
                         round(h->cells.x1 + COLOR_BAR_GAP + COLOR_BAR_WIDTH), h->cells.y1};
    h->z.pixel_lo = h->bar.y1;
    h->z.pixel_hi = h->bar.y0;
    plot_axis_ticks(&h->z, true, f->font, PLOT_TICK_SIZE, NULL, 0, &h->z_ticks);
}

static plot_rect cell_rect(const heatmap_layout *h, size_t row, size_t col) {
    double x0 = h->cells.x0 + col * h->cell_w, y0 = h->cells.y0 + row * h->cell_h;
    /* A white hairline between cells when they are large enough to spare it. */
    double gap = h->cell_w >= 20 && h->cell_h >= 20 ? 1 : 0;
    return (plot_rect){x0, y0, x0 + h->cell_w - gap, y0 + h->cell_h - gap};
}

/* Decimals that suit the values: 2 for values within +-10, fewer for larger ones. */
static int value_decimals(const plot_axis *z) {
    double magnitude = fmax(fabs(z->lo), fabs(z->hi));
    int decimals = magnitude > 0 ? 2 - (int)floor(log10(magnitude)) : 2;
    return decimals < 0 ? 0 : decimals > 3 ? 3 : decimals;
}

static void format_cell(double value, const plot_axis *z, char *buf, size_t len) {
    int decimals = value_decimals(z);
    /* Values that round to zero print without a sign. */
    if (fabs(value) < 0.5 * pow(10, -decimals)) value = 0;
    if (fmax(fabs(z->lo), fabs(z->hi)) >= 1e4)
        plot_format_value(value, 3, buf, len);
    else
        snprintf(buf, len, "%.*f", decimals, value);
}

static bool show_values(const plot_frame *f, const heatmap_layout *h) {
    const plot_chart *c = f->chart;
    if (c->cell_values != PLOT_CELL_VALUES_AUTO) return c->cell_values == PLOT_CELL_VALUES_ON;
    char widest[64];
    format_cell(-fmax(fabs(h->z.lo), fabs(h->z.hi)), &h->z, widest, sizeof widest);
    return c->rows * c->cols <= MAX_VALUE_CELLS &&
           plot_text_width(f->font, VALUE_SIZE, widest) + 6 <= h->cell_w &&
           plot_text_height(f->font, VALUE_SIZE) + 4 <= h->cell_h;
}

static void draw_cells(plot_frame *f, const heatmap_layout *h) {
    const plot_chart *c = f->chart;
    bool values = show_values(f, h);
    plot_text_style style =
        plot_style(VALUE_SIZE, plot_text_color, PLOT_ALIGN_CENTER, PLOT_VALIGN_MIDDLE, 0);
    for (size_t row = 0; row < c->rows; row++)
        for (size_t col = 0; col < c->cols; col++) {
            double v = c->matrix[row * c->cols + col];
            bool present = plot_axis_accepts(false, v);
            plot_color color =
                present ? color_at((v - h->z.lo) / (h->z.hi - h->z.lo)) : missing_color;
            plot_rect r = cell_rect(h, row, col);
            plot_fill_rect(f->canvas, r, color);
            if (!values || !present) continue;
            char text[64];
            format_cell(v, &h->z, text, sizeof text);
            style.color = is_dark(color) ? (plot_color){0xff, 0xff, 0xff} : plot_text_color;
            plot_draw_text(f->canvas, f->font, &style, (r.x0 + r.x1) / 2, (r.y0 + r.y1) / 2, text);
        }
}

/* Every n-th label so that labels `extent` pixels long keep apart on cells `cell` apart. */
static size_t label_stride(double extent, double cell) {
    size_t every = 1;
    while (every * cell < extent + 4 && every < 1000000) every++;
    return every;
}

static void draw_row_labels(plot_frame *f, const heatmap_layout *h) {
    const plot_chart *c = f->chart;
    if (!c->row_labels) return;
    plot_text_style style =
        plot_style(PLOT_TICK_SIZE, plot_text_color, PLOT_ALIGN_END, PLOT_VALIGN_MIDDLE, 0);
    size_t every = label_stride(plot_text_height(f->font, PLOT_TICK_SIZE), h->cell_h);
    for (size_t row = 0; row < c->rows; row += every)
        plot_draw_text(f->canvas, f->font, &style, h->cells.x0 - LABEL_GAP,
                       h->cells.y0 + (row + 0.5) * h->cell_h, label_of(c->row_labels, row));
}

static void draw_column_labels(plot_frame *f, const heatmap_layout *h) {
    const plot_chart *c = f->chart;
    if (!c->col_labels) return;
    plot_text_style style =
        plot_style(PLOT_TICK_SIZE, plot_text_color, PLOT_ALIGN_CENTER, PLOT_VALIGN_TOP, 0);
    double extent = widest_label(f->font, PLOT_TICK_SIZE, c->col_labels, c->cols) + 4;
    if (h->rotated_columns) {
        style.align = PLOT_ALIGN_END;
        style.angle = COLUMN_LABEL_ANGLE;
        extent =
            plot_text_height(f->font, PLOT_TICK_SIZE) / sin(COLUMN_LABEL_ANGLE * PLOT_PI / 180);
    }
    size_t every = label_stride(extent, h->cell_w);
    for (size_t col = 0; col < c->cols; col += every) {
        double x = h->cells.x0 + (col + 0.5) * h->cell_w;
        plot_draw_text(f->canvas, f->font, &style, h->rotated_columns ? x + 4 : x,
                       h->cells.y1 + LABEL_GAP, label_of(c->col_labels, col));
    }
}

static void draw_color_bar(plot_frame *f, const heatmap_layout *h) {
    for (double y = h->bar.y0; y < h->bar.y1; y++) {
        double t = (h->bar.y1 - (y + 0.5)) / (h->bar.y1 - h->bar.y0);
        plot_fill_rect(f->canvas, (plot_rect){h->bar.x0, y, h->bar.x1, y + 1}, color_at(t));
    }
    plot_stroke_rect(f->canvas,
                     (plot_rect){h->bar.x0 - 1, h->bar.y0 - 1, h->bar.x1 + 1, h->bar.y1 + 1}, 1,
                     plot_frame_color);
    plot_text_style style =
        plot_style(PLOT_TICK_SIZE, plot_text_color, PLOT_ALIGN_START, PLOT_VALIGN_MIDDLE, 0);
    double widest = 0;
    for (int i = 0; i < h->z_ticks.count; i++) {
        const plot_tick *t = &h->z_ticks.tick[i];
        if (!t->major) continue;
        double y = floor(plot_axis_map(&h->z, t->value));
        plot_fill_rect(f->canvas, (plot_rect){h->bar.x1 + 1, y, h->bar.x1 + 1 + TICK_LENGTH, y + 1},
                       plot_frame_color);
        plot_draw_text(f->canvas, f->font, &style, h->bar.x1 + 1 + TICK_LENGTH + 4, y + 0.5,
                       t->label);
        widest = fmax(widest, plot_text_width(f->font, PLOT_TICK_SIZE, t->label));
    }
    if (!plot_has_text(f->chart->z_label)) return;
    plot_text_style label = plot_style(PLOT_AXIS_LABEL_SIZE, plot_text_color, PLOT_ALIGN_CENTER,
                                       PLOT_VALIGN_BOTTOM, 90);
    plot_draw_text(f->canvas, f->font, &label,
                   h->bar.x1 + 1 + TICK_LENGTH + 4 + widest + AXIS_LABEL_GAP +
                       plot_text_height(f->font, PLOT_AXIS_LABEL_SIZE),
                   (h->bar.y0 + h->bar.y1) / 2, f->chart->z_label);
}

int plot_draw_heatmap(plot_frame *f, plot_layout *layout) {
    const plot_chart *c = f->chart;
    heatmap_layout h = {0};
    if (!c->rows || !c->cols) {
        plot_rect area = {PLOT_MARGIN, f->title_bottom, f->canvas->width - PLOT_MARGIN,
                          f->canvas->height - PLOT_MARGIN};
        plot_draw_note(f, area, "no data");
        *layout = (plot_layout){area.x0,
                                area.y0,
                                area.x1,
                                area.y1,
                                {0, 1, false, area.x0, area.x1},
                                {0, 1, false, area.y0, area.y1}};
        return 0;
    }
    fit_color_scale(c, &h.z);
    layout_heatmap(f, &h);
    draw_cells(f, &h);
    draw_row_labels(f, &h);
    draw_column_labels(f, &h);
    draw_color_bar(f, &h);
    double below_columns = h.cells.y1 + column_labels_height(f, h.rotated_columns) + AXIS_LABEL_GAP;
    double left_of_rows =
        h.cells.x0 - AXIS_LABEL_GAP - plot_text_height(f->font, PLOT_AXIS_LABEL_SIZE) -
        (c->row_labels ? widest_label(f->font, PLOT_TICK_SIZE, c->row_labels, c->rows) + LABEL_GAP
                       : 0);
    plot_draw_axis_labels(f, h.cells, below_columns, left_of_rows);
    *layout = (plot_layout){h.cells.x0,
                            h.cells.y0,
                            h.cells.x1,
                            h.cells.y1,
                            {0, (double)c->cols, false, h.cells.x0, h.cells.x1},
                            {0, (double)c->rows, false, h.cells.y0, h.cells.y1}};
    return 0;
}
