#include "cache/kv_policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A count in [min, 2^30] from text[0, len): digits only. */
static bool parse_count(const char *text, size_t len, int min, int *out) {
    if (len == 0 || len > 10 || strspn(text, "0123456789") < len) return false;
    long long value = 0;
    for (size_t i = 0; i < len; i++) value = value * 10 + (text[i] - '0');
    if (value < min || value > (1 << 30)) return false;
    *out = (int)value;
    return true;
}

/* A ratio in (0, 1] from text[0, len): a decimal number, nothing else. */
static bool parse_ratio(const char *text, size_t len, float *out) {
    char buf[32];
    if (len == 0 || len >= sizeof buf || strspn(text, "0123456789.") < len) return false;
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    const double value = strtod(buf, &end);
    if (errno || *end || !(value > 0.0 && value <= 1.0)) return false;
    *out = (float)value;
    return true;
}

/* "name:" at the start of text: returns what follows, or NULL. */
static const char *after_prefix(const char *text, const char *name) {
    const size_t n = strlen(name);
    return strncmp(text, name, n) == 0 && text[n] == ':' ? text + n + 1 : NULL;
}

/* "N,window:W" (N >= 1 first, then the window): the sinks and h2o forms. */
static bool parse_count_and_window(const char *args, int *count, int *window) {
    const char *comma = strchr(args, ',');
    if (!comma || !parse_count(args, (size_t)(comma - args), 1, count)) return false;
    const char *w = after_prefix(comma + 1, "window");
    return w && parse_count(w, strlen(w), 1, window);
}

static bool parse_ratios(const char *args, kv_policy *p) {
    for (const char *item = args;; p->n_ratios++) {
        const char *comma = strchr(item, ',');
        const size_t len = comma ? (size_t)(comma - item) : strlen(item);
        if (p->n_ratios == KV_POLICY_MAX_GROUPS || !parse_ratio(item, len, &p->ratios[p->n_ratios]))
            return false;
        if (!comma) {
            p->n_ratios++;
            return true;
        }
        item = comma + 1;
    }
}

static bool parse_share(const char *args, kv_policy *p) {
    const char *comma = strchr(args, ',');
    if (comma && strcmp(comma + 1, "qalign") != 0) return false;
    p->qalign = comma != NULL;
    return parse_count(args, comma ? (size_t)(comma - args) : strlen(args), 0, &p->first_layer);
}

int kv_policy_parse(const char *text, kv_policy *out, char *err, size_t err_len) {
    kv_policy p = {0};
    const char *args;
    bool ok;
    if (strcmp(text, "full") == 0) p.kind = KV_POLICY_FULL, ok = true;
    else if ((args = after_prefix(text, "window")))
        p.kind = KV_POLICY_WINDOW, ok = parse_count(args, strlen(args), 1, &p.window);
    else if ((args = after_prefix(text, "sinks")))
        p.kind = KV_POLICY_SINKS, ok = parse_count_and_window(args, &p.sinks, &p.window);
    else if ((args = after_prefix(text, "h2o")))
        p.kind = KV_POLICY_H2O, ok = parse_count_and_window(args, &p.heavy, &p.window);
    else if ((args = after_prefix(text, "pyramid"))) p.kind = KV_POLICY_PYRAMID, ok = parse_ratios(args, &p);
    else if ((args = after_prefix(text, "minicache")))
        p.kind = KV_POLICY_MINICACHE, ok = parse_count(args, strlen(args), 0, &p.first_layer);
    else if ((args = after_prefix(text, "share"))) p.kind = KV_POLICY_SHARE, ok = parse_share(args, &p);
    else
        return snprintf(err, err_len, "unknown KV policy '%s' (expected full, window:W, sinks:S,window:W, "
                        "h2o:H,window:W, pyramid:r0,r1,.., minicache:L0 or share:L0[,qalign])", text), -1;
    if (!ok)
        return snprintf(err, err_len, "KV policy '%s' is malformed: counts are integers >= 1 (L0 >= 0), "
                        "ratios in (0, 1], up to %d of them", text, KV_POLICY_MAX_GROUPS), -1;
    *out = p;
    return 0;
}

void kv_policy_format(const kv_policy *p, char *out, size_t out_len) {
    switch (p->kind) {
    case KV_POLICY_FULL: snprintf(out, out_len, "full"); return;
    case KV_POLICY_WINDOW: snprintf(out, out_len, "window:%d", p->window); return;
    case KV_POLICY_SINKS: snprintf(out, out_len, "sinks:%d,window:%d", p->sinks, p->window); return;
    case KV_POLICY_H2O: snprintf(out, out_len, "h2o:%d,window:%d", p->heavy, p->window); return;
    case KV_POLICY_MINICACHE: snprintf(out, out_len, "minicache:%d", p->first_layer); return;
    case KV_POLICY_SHARE:
        snprintf(out, out_len, "share:%d%s", p->first_layer, p->qalign ? ",qalign" : "");
        return;
    case KV_POLICY_PYRAMID: break;
    }
    size_t used = (size_t)snprintf(out, out_len, "pyramid:");
    for (int g = 0; g < p->n_ratios && used < out_len; g++)
        used += (size_t)snprintf(out + used, out_len - used, "%s%.9g", g ? "," : "", p->ratios[g]);
}

int kv_policy_check(const kv_policy *p, int n_layer, char *err, size_t err_len) {
    if (p->kind == KV_POLICY_PYRAMID && p->n_ratios > n_layer)
        return snprintf(err, err_len, "KV policy pyramid: %d ratios for %d layers (one group of "
                        "layers per ratio)", p->n_ratios, n_layer), -1;
    const bool pairwise = p->kind == KV_POLICY_MINICACHE || p->kind == KV_POLICY_SHARE;
    if (pairwise && p->first_layer > n_layer - 2)
        return snprintf(err, err_len, "KV policy %s: L0 %d leaves no pair of layers in a model of %d",
                        p->kind == KV_POLICY_SHARE ? "share" : "minicache", p->first_layer, n_layer), -1;
    return 0;
}

int kv_policy_layer_budget(const kv_policy *p, int layer, int n_layer, int budget_tokens) {
    switch (p->kind) {
    case KV_POLICY_WINDOW: return p->window;
    case KV_POLICY_SINKS: return p->sinks + p->window;
    case KV_POLICY_H2O: return p->heavy + p->window;
    case KV_POLICY_PYRAMID: {
        const int group = (int)((long long)layer * p->n_ratios / n_layer);
        const int tokens = (int)((double)p->ratios[group] * budget_tokens);
        return tokens > 0 ? tokens : 1;
    }
    default: return budget_tokens;
    }
}

int kv_policy_first_chunk(const kv_policy *p, int n_layer, int budget_tokens, int max_chunk,
                          int n) {
    int first = n < max_chunk ? n : max_chunk;
    if (p->kind == KV_POLICY_MINICACHE) return first < 1 ? first : 1;
    for (int l = 0; l < n_layer; l++) {
        const int budget = kv_policy_layer_budget(p, l, n_layer, budget_tokens);
        if (budget < first) first = budget;
    }
    return first;
}

int kv_policy_restart_keeps(const kv_policy *p) {
    if (p->kind == KV_POLICY_WINDOW) return p->window;
    return p->kind == KV_POLICY_SINKS ? p->sinks + p->window : 0;
}

int kv_policy_restart_context(const kv_policy *p, int32_t *ids, int len) {
    const int sinks = p->kind == KV_POLICY_SINKS ? p->sinks : 0, keep = kv_policy_restart_keeps(p);
    memmove(ids + sinks, ids + len - (keep - sinks), (size_t)(keep - sinks) * sizeof *ids);
    return keep;
}

int kv_policy_kv_source(const kv_policy *p, int layer) {
    if (p->kind != KV_POLICY_SHARE || layer < p->first_layer) return layer;
    return layer - (layer - p->first_layer) % 2;
}
