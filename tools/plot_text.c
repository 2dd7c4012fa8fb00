/*
 * Text for the plot library: TrueType glyphs from stb_truetype, or stb_easy_font's segments
 * scaled up when no font file can be found. A string is first rendered into an alpha mask in
 * its own coordinates (pen origin at the left end of the baseline, y down), which is then
 * blended onto the canvas at any angle.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_easy_font.h>
#include <stb/stb_truetype.h>

#include "tools/plot_internal.h"

struct plot_font {
    unsigned char *ttf; /* the font file; NULL for the built-in font */
    stbtt_fontinfo info;
    double units_to_em;                 /* font units per em, inverted */
    double ascent, descent, cap_height; /* in em; descent is negative */
};

/* The built-in font's glyphs: capitals and digits are 7 units tall, descenders reach 10. */
#define BUILTIN_CAP_UNITS 7.0
#define BUILTIN_DESCENT_UNITS 3.0
/* Its scale: capitals as tall as DejaVu Sans's (0.73 em). */
#define BUILTIN_CAP_EM 0.73

static const char *const font_paths[] = {
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",   /* Debian, Ubuntu */
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",            /* Fedora */
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf", /* Fedora, newer */
    "/usr/share/fonts/TTF/DejaVuSans.ttf",               /* Arch */
    "/usr/local/share/fonts/DejaVuSans.ttf",             /* FreeBSD, by hand */
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf", /* macOS */
    "/System/Library/Fonts/Supplemental/Arial.ttf",
};

static unsigned char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *data = NULL;
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size > 0 && fseek(f, 0, SEEK_SET) == 0 && (data = malloc((size_t)size)) &&
        fread(data, 1, (size_t)size, f) != (size_t)size) {
        free(data);
        data = NULL;
    }
    fclose(f);
    return data;
}

/* Reads and checks a TrueType file into font; false when it is missing or not a font. */
static bool load_truetype(plot_font *font, const char *path) {
    unsigned char *data = read_file(path);
    int offset = data ? stbtt_GetFontOffsetForIndex(data, 0) : -1;
    int x0, y0, x1, y1, ascent, descent, line_gap;
    if (offset < 0 || !stbtt_InitFont(&font->info, data, offset) ||
        !stbtt_GetCodepointBox(&font->info, 'H', &x0, &y0, &x1, &y1)) {
        free(data);
        return false;
    }
    font->ttf = data;
    font->units_to_em = stbtt_ScaleForMappingEmToPixels(&font->info, 1);
    stbtt_GetFontVMetrics(&font->info, &ascent, &descent, &line_gap);
    font->ascent = ascent * font->units_to_em;
    font->descent = descent * font->units_to_em;
    font->cap_height = y1 * font->units_to_em;
    return true;
}

plot_font *plot_font_builtin(void) {
    plot_font *font = calloc(1, sizeof *font);
    if (!font) return NULL;
    double em_per_unit = BUILTIN_CAP_EM / BUILTIN_CAP_UNITS;
    font->ascent = (BUILTIN_CAP_UNITS + 1) * em_per_unit;
    font->descent = -BUILTIN_DESCENT_UNITS * em_per_unit;
    font->cap_height = BUILTIN_CAP_EM;
    return font;
}

plot_font *plot_font_load(char *note, size_t note_len) {
    plot_font *font = plot_font_builtin();
    if (!font) return NULL;
    if (note && note_len) note[0] = '\0';
    const char *env = getenv("GPT2_FONT");
    if (env && *env) {
        if (load_truetype(font, env)) return font;
        if (note) snprintf(note, note_len, "GPT2_FONT=%s is not a readable TrueType font", env);
    }
    for (size_t i = 0; i < sizeof font_paths / sizeof font_paths[0]; i++)
        if (load_truetype(font, font_paths[i])) return font;
    if (note && !(env && *env))
        snprintf(note, note_len,
                 "no TrueType font found (set GPT2_FONT to a .ttf file); "
                 "using the built-in bitmap font");
    return font;
}

void plot_font_free(plot_font *font) {
    if (!font) return;
    free(font->ttf);
    free(font);
}

/* Decodes one UTF-8 character at *s and advances past it; invalid bytes give U+FFFD. */
static int next_codepoint(const char **s) {
    const unsigned char *p = (const unsigned char *)*s;
    int length = p[0] < 0x80         ? 1
                 : (p[0] >> 5) == 6  ? 2
                 : (p[0] >> 4) == 14 ? 3
                 : (p[0] >> 3) == 30 ? 4
                                     : 0;
    int codepoint = length == 1 ? p[0] : length ? p[0] & (0x7f >> length) : 0;
    for (int i = 1; i < length; i++) {
        if ((p[i] >> 6) != 2) {
            length = 0;
            break;
        }
        codepoint = (codepoint << 6) | (p[i] & 0x3f);
    }
    *s += length ? length : 1;
    return length ? codepoint : 0xfffd;
}

/* One string as an alpha mask: pixel (i, j) of the mask is at pen coordinates (x0+i, y0+j). */
typedef struct {
    int x0, y0, width, height;
    unsigned char *alpha;
    double advance;
} text_mask;

typedef struct {
    int glyph;
    double pen_x;
} placed_glyph;

/* Glyphs of text with their pen positions (kerned); *count of them. NULL when out of memory. */
static placed_glyph *place_glyphs(const plot_font *font, double scale, const char *text,
                                  size_t *count, double *advance) {
    placed_glyph *glyphs = malloc((strlen(text) + 1) * sizeof *glyphs);
    if (!glyphs) return NULL;
    size_t n = 0;
    double pen = 0;
    while (*text) {
        int glyph = stbtt_FindGlyphIndex(&font->info, next_codepoint(&text));
        if (n) pen += scale * stbtt_GetGlyphKernAdvance(&font->info, glyphs[n - 1].glyph, glyph);
        int advance_units, left_bearing;
        stbtt_GetGlyphHMetrics(&font->info, glyph, &advance_units, &left_bearing);
        glyphs[n++] = (placed_glyph){glyph, pen};
        pen += scale * advance_units;
    }
    *count = n;
    *advance = pen;
    return glyphs;
}

static void glyph_box(const plot_font *font, double scale, const placed_glyph *g, int box[4]) {
    double whole = floor(g->pen_x);
    stbtt_GetGlyphBitmapBoxSubpixel(&font->info, g->glyph, (float)scale, (float)scale,
                                    (float)(g->pen_x - whole), 0, &box[0], &box[1], &box[2],
                                    &box[3]);
    box[0] += (int)whole;
    box[2] += (int)whole;
}

/* Renders one glyph and adds it into the mask. False when out of memory. */
static bool add_glyph(const plot_font *font, double scale, const placed_glyph *g, text_mask *mask) {
    int box[4];
    glyph_box(font, scale, g, box);
    int w = box[2] - box[0], h = box[3] - box[1];
    if (w <= 0 || h <= 0) return true;
    unsigned char *pixels = malloc((size_t)w * (size_t)h);
    if (!pixels) return false;
    stbtt_MakeGlyphBitmapSubpixel(&font->info, pixels, w, h, w, (float)scale, (float)scale,
                                  (float)(g->pen_x - floor(g->pen_x)), 0, g->glyph);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned char *a = &mask->alpha[(size_t)(box[1] - mask->y0 + y) * mask->width +
                                            (size_t)(box[0] - mask->x0 + x)];
            int sum = *a + pixels[y * w + x];
            *a = (unsigned char)(sum > 255 ? 255 : sum);
        }
    free(pixels);
    return true;
}

/* A blank mask for pen coordinates [x0, x1] x [y0, y1), one column wider for emboldening. */
static bool allocate_mask(text_mask *mask, int x0, int y0, int x1, int y1) {
    mask->x0 = x0, mask->y0 = y0;
    mask->width = x1 > x0 ? x1 - x0 + 1 : 0;
    mask->height = y1 > y0 ? y1 - y0 : 0;
    mask->alpha = calloc((size_t)mask->width * (size_t)mask->height + 1, 1);
    return mask->alpha != NULL;
}

static bool render_truetype(const plot_font *font, double size, const char *text, text_mask *mask) {
    double scale = size * font->units_to_em;
    size_t n;
    placed_glyph *glyphs = place_glyphs(font, scale, text, &n, &mask->advance);
    if (!glyphs) return false;
    int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    for (size_t i = 0; i < n; i++) {
        int box[4];
        glyph_box(font, scale, &glyphs[i], box);
        if (box[2] <= box[0] || box[3] <= box[1]) continue;
        x0 = box[0] < x0 ? box[0] : x0, y0 = box[1] < y0 ? box[1] : y0;
        x1 = box[2] > x1 ? box[2] : x1, y1 = box[3] > y1 ? box[3] : y1;
    }
    bool ok = allocate_mask(mask, x0, y0, x1, y1);
    for (size_t i = 0; ok && i < n; i++) ok = add_glyph(font, scale, &glyphs[i], mask);
    free(glyphs);
    return ok;
}

/* text with every character stb_easy_font cannot draw replaced by '?'. NULL when out of memory. */
static char *builtin_charset(const char *text) {
    char *ascii = malloc(strlen(text) + 1), *out = ascii;
    if (!ascii) return NULL;
    while (*text) {
        int c = next_codepoint(&text);
        *out++ = c >= 32 && c < 127 ? (char)c : '?';
    }
    *out = '\0';
    return ascii;
}

static double builtin_scale(double size) { return size * BUILTIN_CAP_EM / BUILTIN_CAP_UNITS; }

static double builtin_width(double size, const char *text) {
    char *ascii = builtin_charset(text);
    double width = ascii ? builtin_scale(size) * stb_easy_font_width(ascii) : 0;
    free(ascii);
    return width;
}

/* Fills the quads stb_easy_font makes for the text, scaled, with area coverage. */
static bool render_builtin(double size, const char *text, text_mask *mask) {
    enum { QUAD_BYTES = 64, MAX_QUADS_PER_CHAR = 32 };
    char *ascii = builtin_charset(text);
    size_t buffer_size = (strlen(text) + 1) * MAX_QUADS_PER_CHAR * QUAD_BYTES;
    float *vertices = ascii ? malloc(buffer_size) : NULL;
    double scale = builtin_scale(size);
    mask->advance = ascii ? scale * stb_easy_font_width(ascii) : 0;
    bool ok = vertices &&
              allocate_mask(mask, 0, (int)floor(-BUILTIN_CAP_UNITS * scale),
                            (int)ceil(mask->advance), (int)ceil(BUILTIN_DESCENT_UNITS * scale));
    int quads = ok ? stb_easy_font_print(0, (float)-BUILTIN_CAP_UNITS, ascii, NULL, vertices,
                                         (int)buffer_size)
                   : 0;
    for (int q = 0; q < quads; q++) {
        const float *v = vertices + q * 16; /* 4 vertices of x, y, z, colour */
        double qx0 = v[0] * scale - mask->x0, qy0 = v[1] * scale - mask->y0;
        double qx1 = v[8] * scale - mask->x0, qy1 = v[9] * scale - mask->y0;
        for (int y = (int)floor(qy0); y < (int)ceil(qy1) && y < mask->height; y++)
            for (int x = (int)floor(qx0); x < (int)ceil(qx1) && x < mask->width; x++) {
                if (x < 0 || y < 0) continue;
                double cover =
                    (fmin(qx1, x + 1) - fmax(qx0, x)) * (fmin(qy1, y + 1) - fmax(qy0, y));
                unsigned char *a = &mask->alpha[(size_t)y * mask->width + (size_t)x];
                double sum = *a + 255 * cover;
                *a = (unsigned char)(sum > 255 ? 255 : sum);
            }
    }
    free(vertices);
    free(ascii);
    return ok;
}

/* Thickens the strokes: each pixel also takes the coverage of its left neighbour. */
static void embolden(text_mask *mask) {
    for (int y = 0; y < mask->height; y++) {
        unsigned char *row = mask->alpha + (size_t)y * mask->width;
        for (int x = mask->width - 1; x > 0; x--)
            if (row[x - 1] > row[x]) row[x] = row[x - 1];
    }
}

static bool render_mask(const plot_font *font, const plot_text_style *style, const char *text,
                        text_mask *mask) {
    *mask = (text_mask){0};
    bool ok = font->ttf ? render_truetype(font, style->size, text, mask)
                        : render_builtin(style->size, text, mask);
    if (ok && style->bold) embolden(mask);
    if (!ok) {
        free(mask->alpha);
        *mask = (text_mask){0};
    }
    return ok;
}

plot_text_style plot_style(double size, plot_color color, plot_align align, plot_valign valign,
                           double angle) {
    return (plot_text_style){size, color, align, valign, angle, false};
}

double plot_text_width(const plot_font *font, double size, const char *text) {
    if (!font->ttf) return builtin_width(size, text);
    double scale = size * font->units_to_em, advance = 0;
    size_t n;
    free(place_glyphs(font, scale, text, &n, &advance));
    return advance;
}

double plot_text_height(const plot_font *font, double size) {
    return size * (font->ascent - font->descent);
}

/* The anchor in pen coordinates. */
static plot_point anchor_of(const plot_font *font, const plot_text_style *style, double advance) {
    double u = style->align == PLOT_ALIGN_START    ? 0
               : style->align == PLOT_ALIGN_CENTER ? advance / 2
                                                   : advance;
    double v = style->valign == PLOT_VALIGN_TOP        ? -font->ascent * style->size
               : style->valign == PLOT_VALIGN_MIDDLE   ? -font->cap_height * style->size / 2
               : style->valign == PLOT_VALIGN_BASELINE ? 0
                                                       : -font->descent * style->size;
    return (plot_point){u, v};
}

/* Maps pen coordinates (u, v) to the canvas for text anchored at `at`. */
typedef struct {
    plot_point at, anchor;
    double cos_a, sin_a;
} text_transform;

static plot_point to_canvas(const text_transform *t, double u, double v) {
    double du = u - t->anchor.x, dv = v - t->anchor.y;
    return (plot_point){t->at.x + du * t->cos_a + dv * t->sin_a,
                        t->at.y - du * t->sin_a + dv * t->cos_a};
}

static plot_point to_pen(const text_transform *t, double x, double y) {
    double dx = x - t->at.x, dy = y - t->at.y;
    return (plot_point){t->anchor.x + dx * t->cos_a - dy * t->sin_a,
                        t->anchor.y + dx * t->sin_a + dy * t->cos_a};
}

static text_transform make_transform(const plot_font *font, const plot_text_style *style, double x,
                                     double y, double advance) {
    double radians = style->angle * PLOT_PI / 180;
    text_transform t = {{x, y}, anchor_of(font, style, advance), cos(radians), sin(radians)};
    /* Upright and vertical text lands on whole pixels, so that the mask is copied unblurred. */
    if (style->angle == 0) {
        t.at.x = round(x - t.anchor.x) + t.anchor.x;
        t.at.y = round(y - t.anchor.y) + t.anchor.y;
        t.cos_a = 1, t.sin_a = 0;
    } else if (style->angle == 90) {
        t.at.x = round(x - t.anchor.y) + t.anchor.y;
        t.at.y = round(y + t.anchor.x) - t.anchor.x;
        t.cos_a = 0, t.sin_a = 1;
    }
    return t;
}

static plot_rect bounds_of(const text_transform *t, double u0, double v0, double u1, double v1) {
    plot_point c[4] = {to_canvas(t, u0, v0), to_canvas(t, u1, v0), to_canvas(t, u0, v1),
                       to_canvas(t, u1, v1)};
    plot_rect r = {c[0].x, c[0].y, c[0].x, c[0].y};
    for (int i = 1; i < 4; i++) {
        r.x0 = fmin(r.x0, c[i].x), r.x1 = fmax(r.x1, c[i].x);
        r.y0 = fmin(r.y0, c[i].y), r.y1 = fmax(r.y1, c[i].y);
    }
    return r;
}

plot_rect plot_text_box(const plot_font *font, const plot_text_style *style, double x, double y,
                        const char *text) {
    double advance = plot_text_width(font, style->size, text);
    text_transform t = make_transform(font, style, x, y, advance);
    return bounds_of(&t, 0, -font->ascent * style->size, advance, -font->descent * style->size);
}

static double mask_at(const text_mask *mask, int i, int j) {
    if (i < 0 || j < 0 || i >= mask->width || j >= mask->height) return 0;
    return mask->alpha[(size_t)j * mask->width + (size_t)i] / 255.0;
}

/* The mask's coverage at pen coordinates (u, v), interpolated bilinearly between pixel centres. */
static double sample_mask(const text_mask *mask, double u, double v) {
    double fx = u - mask->x0 - 0.5, fy = v - mask->y0 - 0.5;
    int i = (int)floor(fx), j = (int)floor(fy);
    double tx = fx - i, ty = fy - j;
    return (1 - ty) * ((1 - tx) * mask_at(mask, i, j) + tx * mask_at(mask, i + 1, j)) +
           ty * ((1 - tx) * mask_at(mask, i, j + 1) + tx * mask_at(mask, i + 1, j + 1));
}

void plot_draw_text(plot_canvas *canvas, const plot_font *font, const plot_text_style *style,
                    double x, double y, const char *text) {
    text_mask mask;
    if (!text || !*text || !render_mask(font, style, text, &mask)) return;
    text_transform t = make_transform(font, style, x, y, mask.advance);
    plot_rect box = bounds_of(&t, mask.x0, mask.y0, mask.x0 + mask.width, mask.y0 + mask.height);
    int px0 = (int)fmax(floor(box.x0), 0), px1 = (int)fmin(ceil(box.x1), canvas->width);
    int py0 = (int)fmax(floor(box.y0), 0), py1 = (int)fmin(ceil(box.y1), canvas->height);
    for (int py = py0; py < py1; py++)
        for (int px = px0; px < px1; px++) {
            plot_point pen = to_pen(&t, px + 0.5, py + 0.5);
            plot_blend(canvas, px, py, sample_mask(&mask, pen.x, pen.y), style->color);
        }
    free(mask.alpha);
}
