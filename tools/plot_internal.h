/*
 * Internals shared by the plot_*.c files: the canvas and its primitives, text, axes and ticks,
 * and the frame every chart kind draws into. Not part of the library's interface (tools/plot.h).
 */
#ifndef GPT2_PLOT_INTERNAL_H
#define GPT2_PLOT_INTERNAL_H

#include "tools/plot.h"

#define PLOT_PI 3.14159265358979323846

/* Whether s is a string worth drawing. */
static inline bool plot_has_text(const char *s) { return s && *s; }

typedef struct {
    double x, y;
} plot_point;

typedef struct {
    double x0, y0, x1, y1; /* x0 <= x1, y0 <= y1 */
} plot_rect;

/* ---- canvas (plot_canvas.c) ---- */

typedef struct {
    int width, height;
    uint8_t *rgb;    /* [height][width][3] */
    float *coverage; /* [height][width] scratch for polylines; all zero between calls */
    plot_rect clip;  /* drawing outside it is discarded */
} plot_canvas;

bool plot_canvas_init(plot_canvas *canvas, int width, int height, plot_color background);
void plot_canvas_free(plot_canvas *canvas);
/* False with errno set when the file cannot be written. */
bool plot_canvas_write_png(const plot_canvas *canvas, const char *path);
void plot_canvas_clip(plot_canvas *canvas, plot_rect clip);
void plot_canvas_unclip(plot_canvas *canvas);

/* Mixes color into pixel (x, y) with the given opacity in [0, 1]; respects the clip. */
void plot_blend(plot_canvas *canvas, int x, int y, double alpha, plot_color color);

/* Fills the rectangle; partly covered edge pixels are blended by the area covered. */
void plot_fill_rect(plot_canvas *canvas, plot_rect rect, plot_color color);
/* The rectangle's outline, width pixels wide, inside it. */
void plot_stroke_rect(plot_canvas *canvas, plot_rect rect, double width, plot_color color);
/* An anti-aliased line through n points with round joins and caps. */
void plot_polyline(plot_canvas *canvas, const plot_point *points, size_t n, double width,
                   plot_color color);
void plot_line(plot_canvas *canvas, plot_point a, plot_point b, double width, plot_color color);
void plot_dashed_line(plot_canvas *canvas, plot_point a, plot_point b, double width, double dash,
                      double gap, plot_color color);
void plot_fill_circle(plot_canvas *canvas, plot_point center, double radius, plot_color color);
/* Fills a simple polygon (even-odd rule), anti-aliased by 4x4 supersampling. */
void plot_fill_polygon(plot_canvas *canvas, const plot_point *points, size_t n, plot_color color);

/* ---- text (plot_text.c) ---- */

typedef enum { PLOT_ALIGN_START, PLOT_ALIGN_CENTER, PLOT_ALIGN_END } plot_align;
/* MIDDLE centres the height of capital letters and digits on the anchor. */
typedef enum {
    PLOT_VALIGN_TOP,
    PLOT_VALIGN_MIDDLE,
    PLOT_VALIGN_BASELINE,
    PLOT_VALIGN_BOTTOM
} plot_valign;

typedef struct {
    double size; /* em size in pixels */
    plot_color color;
    plot_align align;   /* along the text's direction */
    plot_valign valign; /* across it */
    double angle;       /* degrees counter-clockwise; 90 reads from bottom to top */
    bool bold;          /* strokes thickened by a pixel */
} plot_text_style;

/* A style, not bold. */
plot_text_style plot_style(double size, plot_color color, plot_align align, plot_valign valign,
                           double angle);
/* Advance width of text (UTF-8) in pixels. */
double plot_text_width(const plot_font *font, double size, const char *text);
/* Height of one line, from the top of the tallest letters to the bottom of descenders. */
double plot_text_height(const plot_font *font, double size);
/* Draws text anchored at (x, y), rotated about that point. */
void plot_draw_text(plot_canvas *canvas, const plot_font *font, const plot_text_style *style,
                    double x, double y, const char *text);
/* The axis-aligned box around the line of text plot_draw_text would draw (turned, if angled). */
plot_rect plot_text_box(const plot_font *font, const plot_text_style *style, double x, double y,
                        const char *text);

/* ---- axes and ticks (plot_axis.c) ---- */

#define PLOT_MAX_TICKS 160
#define PLOT_TICK_LABEL_LEN 24

typedef struct {
    double value;
    bool major; /* labelled, with a grid line; minor ticks are short and unlabelled */
    char label[PLOT_TICK_LABEL_LEN];
} plot_tick;

typedef struct {
    plot_tick tick[PLOT_MAX_TICKS];
    int count;
} plot_ticks;

/* True when the value can be placed on the axis (finite, and positive on a log axis). */
bool plot_axis_accepts(bool log, double value);
/*
 * Sets axis->lo/hi to the data range [lo, hi] widened by pad (a fraction of the span, in log10
 * units on a log axis). NaN bounds (no data) and a single value get a sensible range.
 */
void plot_axis_fit(plot_axis *axis, double lo, double hi, bool log, double pad);
/*
 * Ticks for the axis: decades (with 2..9 minor ticks) on log axes, 1/2/5 steps on linear ones,
 * or exactly the values in explicit[n_explicit] when given. Labels never overlap: `vertical`
 * axes space them by their height, horizontal ones by their width at the given text size.
 */
void plot_axis_ticks(const plot_axis *axis, bool vertical, const plot_font *font, double size,
                     const double *explicit_values, size_t n_explicit, plot_ticks *out);
/*
 * Tick label for value on an axis stepping by step whose largest magnitude is scale, with the
 * decimals the step needs: 0.0, 0.5, 2.5k, 1M; exponents where scale is below 0.01: 0.5e-2.
 */
void plot_format_tick(double value, double step, double scale, char *buf, size_t buf_len);
/* value with unit and an SI prefix: "3 TB/s", "680 TFLOP/s". */
void plot_format_si(double value, const char *unit, char *buf, size_t buf_len);

/* ---- the frame of a chart (plot.c), used by every kind ---- */

/* Sizes of text, in pixels. */
#define PLOT_TITLE_SIZE 22.0
#define PLOT_SUBTITLE_SIZE 14.0
#define PLOT_AXIS_LABEL_SIZE 17.0
#define PLOT_TICK_SIZE 15.0
#define PLOT_LEGEND_SIZE 15.0
#define PLOT_NOTE_SIZE 13.0
#define PLOT_MARGIN 16.0 /* between the image edge and any text */

extern const plot_color plot_text_color, plot_muted_text_color, plot_frame_color, plot_grid_color,
    plot_minor_grid_color;

/* Points and rectangles that labels and the legend should not cover. */
typedef struct {
    plot_point *points;
    size_t n_points, cap_points;
    plot_rect *rects;
    size_t n_rects, cap_rects;
    bool failed; /* out of memory */
} plot_obstacles;

void plot_obstacles_add_point(plot_obstacles *obstacles, plot_point point);
/* Adds points every few pixels along the segment. */
void plot_obstacles_add_segment(plot_obstacles *obstacles, plot_point a, plot_point b);
void plot_obstacles_add_rect(plot_obstacles *obstacles, plot_rect rect);
/* How much of the obstacles rect would cover: points inside plus overlapped area / 16. */
double plot_obstacles_cost(const plot_obstacles *obstacles, plot_rect rect);
void plot_obstacles_free(plot_obstacles *obstacles);

typedef enum {
    PLOT_MARKER_CIRCLE,
    PLOT_MARKER_SQUARE,
    PLOT_MARKER_TRIANGLE,
    PLOT_MARKER_DIAMOND
} plot_marker;

/* Marker shape of series i, so that series differ by more than colour. */
plot_marker plot_series_marker(size_t index);
/* A marker with a thin white outline, so that it stands out on lines. */
void plot_draw_marker(plot_canvas *canvas, plot_marker marker, plot_point center, double radius,
                      plot_color color);

/* One legend entry: a line with a marker (line charts) or a filled square (bars). */
typedef struct {
    const char *name;
    plot_color color;
    plot_marker marker;
    bool show_marker; /* false when the series is drawn without markers */
} plot_legend_entry;

typedef struct {
    const plot_legend_entry *entries;
    size_t n;
    bool patches; /* squares instead of line samples */
} plot_legend;

/* Size of the legend box. */
plot_point plot_legend_size(const plot_font *font, const plot_legend *legend);
void plot_draw_legend(plot_canvas *canvas, const plot_font *font, const plot_legend *legend,
                      plot_point top_left);
/*
 * The best place for the legend inside the plot area: of the corners and the middles of the
 * edges, the one covering the fewest obstacles. Returns how much it covers (0: nothing).
 */
double plot_place_legend(const plot_obstacles *obstacles, plot_rect area, plot_point size,
                         plot_point *top_left);

/* Everything a chart draws around its plot area. */
typedef struct {
    const plot_chart *chart;
    const plot_font *font;
    plot_canvas *canvas;
    double title_bottom; /* y below the title and subtitle */
} plot_frame;

#define PLOT_LINE_BYTES 512

typedef struct {
    char text[PLOT_LINE_BYTES];
} plot_text_line;

/*
 * Breaks text at spaces into at most max_lines lines no wider than max_width; a line that is
 * still too wide (one long word, or the last line) ends in "..." and sets *shortened (when not
 * NULL). Returns the number of lines.
 */
int plot_wrap_text(const plot_font *font, double size, const char *text, double max_width,
                   int max_lines, plot_text_line *lines, bool *shortened);

/* Draws the title and subtitle and sets frame->title_bottom. */
void plot_draw_titles(plot_frame *frame);
/* The x and y axis labels around the plot area; y_label_x is the x of the rotated y label. */
void plot_draw_axis_labels(plot_frame *frame, plot_rect area, double x_label_y, double y_label_x);
/* Grid lines at the ticks, drawn before the data. */
void plot_draw_grid(plot_canvas *canvas, plot_rect area, const plot_axis *x, const plot_ticks *xt,
                    const plot_axis *y, const plot_ticks *yt);
/* Frame, tick marks and tick labels, drawn after the data. */
void plot_draw_axes(plot_frame *frame, plot_rect area, const plot_axis *x, const plot_ticks *xt,
                    const plot_axis *y, const plot_ticks *yt);
/* Room below the plot area for the x tick labels, and left of it for the y tick labels. */
double plot_x_tick_labels_height(const plot_font *font);
double plot_y_tick_labels_width(const plot_font *font, const plot_ticks *ticks);
/* A muted note centred in the area ("no data"). */
void plot_draw_note(plot_frame *frame, plot_rect area, const char *text);

/* A place for a label: the anchor, the style, and a cost added for it being less natural. */
typedef struct {
    double x, y;
    plot_text_style style;
    double extra_cost;
} plot_label_spot;

/*
 * Draws text at the spot whose box covers the fewest obstacles and least of the outside of the
 * area, and adds the box to the obstacles. Returns the index of the spot taken.
 */
int plot_place_label(plot_frame *frame, plot_rect area, plot_obstacles *obstacles,
                     const plot_label_spot *spots, size_t n, const char *text);
/* The reference lines as obstacles, for placing the legend. */
void plot_add_reference_obstacles(const plot_chart *chart, plot_rect area, const plot_axis *y,
                                  plot_obstacles *obstacles);
/* Horizontal dashed lines across the area, labelled where they cover the fewest obstacles. */
void plot_draw_reference_lines(plot_frame *frame, plot_rect area, const plot_axis *y,
                               plot_obstacles *obstacles);

/* ---- what the charts on x/y axes share (plot_xy.c) ---- */

#define PLOT_AXIS_LABEL_GAP 8.0      /* between tick labels and the axis label */
#define PLOT_LEGEND_OUTSIDE_GAP 16.0 /* between the plot area and a legend right of it */
#define PLOT_DATA_PAD 0.04           /* room around the data, as a fraction of the axis span */

/* The span of some values; NaN bounds when empty. */
typedef struct {
    double lo, hi;
} plot_range;

plot_range plot_range_empty(void);
void plot_range_add(plot_range *range, double value);
/* Adds the values that the axis accepts (see plot_axis_accepts). */
void plot_range_add_accepted(plot_range *range, bool log, const double *values, size_t n);

typedef struct {
    plot_rect area;
    plot_axis x, y; /* bar charts: x is the category index, category i spans [i, i + 1) */
    plot_ticks x_ticks, y_ticks;
} plot_xy_axes;

/*
 * Places the plot area below the titles, above x_labels_height of x tick labels, right of the y
 * tick labels (and of min_left) and left of right_reserve; maps the (already fitted) y axis and
 * makes its ticks, and gives the x axis its pixels.
 */
void plot_place_area(const plot_frame *frame, double x_labels_height, double right_reserve,
                     double min_left, plot_xy_axes *axes);
/* Lays out a chart with a numeric x axis: the area, both axes mapped, both sets of ticks. */
void plot_layout_numeric(const plot_frame *frame, double right_reserve, plot_xy_axes *axes);
/* Frame, ticks and axis labels, drawn over the data; numeric_x false leaves out the x ticks. */
void plot_draw_xy_axes(plot_frame *frame, const plot_xy_axes *axes, bool numeric_x,
                       double x_labels_height);
void plot_export_layout(const plot_xy_axes *axes, plot_layout *layout);
/*
 * The legend entries of the named series; *n of them. NULL with *n = 0 when there are none,
 * and then *failed tells whether that is for want of memory.
 */
plot_legend_entry *plot_legend_entries(const plot_chart *chart, size_t *n, bool *failed);
/*
 * Whether the legend goes right of the plot area: wherever it goes inside (*inside_at, the best
 * place) it would hide data, and outside it leaves the area most of the width.
 */
bool plot_legend_goes_outside(const plot_frame *frame, const plot_obstacles *obstacles,
                              const plot_xy_axes *axes, plot_point size, plot_point *inside_at);

/* ---- the kinds (plot_line.c, plot_bar.c, plot_roofline.c, plot_heatmap.c) ---- */

/* Each draws its chart below the titles; returns 0, or -1 when out of memory. */
int plot_draw_line_chart(plot_frame *frame, plot_layout *layout);
int plot_draw_bar_chart(plot_frame *frame, plot_layout *layout);
int plot_draw_roofline(plot_frame *frame, plot_layout *layout);
int plot_draw_heatmap(plot_frame *frame, plot_layout *layout);

#endif
