/*
 * --kv-policy parsing and what a policy means per layer (cache/kv_policy.h), against values
 * written here from the grammar: every form, canonical round trips, malformed texts refused
 * with one line, the checks against a model's layer count, pyramid budgets per layer group, and
 * share's pairs.
 */
#include <stdio.h>
#include <string.h>

#include "cache/kv_policy.h"
#include "tests/check.h"

static kv_policy parse_ok(const char *text) {
    kv_policy p;
    char err[256] = "";
    CHECK(kv_policy_parse(text, &p, err, sizeof err) == 0, "'%s' refused: %s", text, err);
    return p;
}

static void check_forms(void) {
    kv_policy p = parse_ok("full");
    CHECK(p.kind == KV_POLICY_FULL, "full");
    p = parse_ok("window:256");
    CHECK(p.kind == KV_POLICY_WINDOW && p.window == 256, "window:256");
    p = parse_ok("sinks:4,window:508");
    CHECK(p.kind == KV_POLICY_SINKS && p.sinks == 4 && p.window == 508, "sinks:4,window:508");
    p = parse_ok("h2o:128,window:128");
    CHECK(p.kind == KV_POLICY_H2O && p.heavy == 128 && p.window == 128, "h2o");
    p = parse_ok("pyramid:1,1,0.5,0.25");
    CHECK(p.kind == KV_POLICY_PYRAMID && p.n_ratios == 4 && p.ratios[0] == 1.0f &&
              p.ratios[1] == 1.0f && p.ratios[2] == 0.5f && p.ratios[3] == 0.25f, "pyramid");
    p = parse_ok("minicache:6");
    CHECK(p.kind == KV_POLICY_MINICACHE && p.first_layer == 6, "minicache:6");
    p = parse_ok("share:0");
    CHECK(p.kind == KV_POLICY_SHARE && p.first_layer == 0 && !p.qalign, "share:0");
    p = parse_ok("share:2,qalign");
    CHECK(p.kind == KV_POLICY_SHARE && p.first_layer == 2 && p.qalign, "share:2,qalign");
}

static void check_round_trips(void) {
    const char *texts[] = {"full", "window:1", "sinks:4,window:508", "h2o:16,window:48",
                           "pyramid:1,1,0.5,0.25", "pyramid:0.1", "minicache:0", "share:3,qalign",
                           "share:0"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        char formatted[512];
        kv_policy p = parse_ok(texts[i]);
        kv_policy_format(&p, formatted, sizeof formatted);
        kv_policy again = parse_ok(formatted);
        CHECK(memcmp(&p, &again, sizeof p) == 0, "'%s' formats as '%s', which parses differently",
              texts[i], formatted);
        if (strcmp(texts[i], "pyramid:0.1") != 0) /* 0.1 is not a float: it prints as 0.100000001 */
            CHECK(strcmp(formatted, texts[i]) == 0, "'%s' formats as '%s'", texts[i], formatted);
    }
}

static void check_refused(void) {
    const char *texts[] = {"", "Full", "window", "window:", "window:0", "window:-3", "window:12x",
                           "window:99999999999", "sinks:4", "sinks:0,window:8", "sinks:4,window:0",
                           "sinks:4,win:8", "h2o:,window:8", "pyramid:", "pyramid:1,,0.5",
                           "pyramid:0", "pyramid:1.5", "pyramid:0.5,-1", "pyramid:nan",
                           "minicache:", "minicache:a", "share:", "share:1,q", "share:1,qalign,x",
                           "window:8 ", " full", "lru:8"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        kv_policy p;
        char err[256] = "";
        CHECK(kv_policy_parse(texts[i], &p, err, sizeof err) == -1 && err[0] && !strchr(err, '\n'),
              "'%s' accepted, or refused without one line ('%s')", texts[i], err);
    }
    char many[400] = "pyramid:1";
    for (int g = 1; g <= KV_POLICY_MAX_GROUPS; g++) strcat(many, ",1");
    kv_policy p;
    char err[256];
    CHECK(kv_policy_parse(many, &p, err, sizeof err) == -1, "%d + 1 ratios accepted",
          KV_POLICY_MAX_GROUPS);
}

static void check_against_model(void) {
    char err[256];
    kv_policy p = parse_ok("pyramid:1,1,0.5,0.25");
    CHECK(kv_policy_check(&p, 12, err, sizeof err) == 0, "pyramid of 4 on 12 layers: %s", err);
    CHECK(kv_policy_check(&p, 3, err, sizeof err) == -1, "pyramid of 4 on 3 layers accepted");
    p = parse_ok("share:10");
    CHECK(kv_policy_check(&p, 12, err, sizeof err) == 0, "share:10 on 12 layers: %s", err);
    p = parse_ok("share:11");
    CHECK(kv_policy_check(&p, 12, err, sizeof err) == -1, "share:11 on 12 layers accepted");
    p = parse_ok("minicache:11");
    CHECK(kv_policy_check(&p, 12, err, sizeof err) == -1, "minicache:11 on 12 layers accepted");
}

/* Pyramid 1,1,0.5,0.25 on 12 layers: layers 0-2, 3-5 keep 1024, 6-8 keep 512, 9-11 keep 256. */
static void check_budgets(void) {
    kv_policy p = parse_ok("pyramid:1,1,0.5,0.25");
    const int want[12] = {1024, 1024, 1024, 1024, 1024, 1024, 512, 512, 512, 256, 256, 256};
    for (int l = 0; l < 12; l++)
        CHECK(kv_policy_layer_budget(&p, l, 12, 1024) == want[l], "pyramid layer %d: %d", l,
              kv_policy_layer_budget(&p, l, 12, 1024));
    p = parse_ok("pyramid:0.001");
    CHECK(kv_policy_layer_budget(&p, 0, 2, 100) == 1, "a budget rounds down to no fewer than 1 token");
    p = parse_ok("sinks:4,window:60");
    CHECK(kv_policy_layer_budget(&p, 5, 12, 1024) == 64, "sinks + window");
    p = parse_ok("h2o:16,window:48");
    CHECK(kv_policy_layer_budget(&p, 0, 12, 1024) == 64, "heavy + window");
    p = parse_ok("full");
    CHECK(kv_policy_layer_budget(&p, 0, 12, 1024) == 1024, "full keeps the budget");
}

/* share:3 on 8 layers: 0, 1, 2 alone; pairs (3, 4), (5, 6); 7 alone at the top. */
static void check_share_sources(void) {
    kv_policy p = parse_ok("share:3");
    const int want[8] = {0, 1, 2, 3, 3, 5, 5, 7};
    for (int l = 0; l < 8; l++)
        CHECK(kv_policy_kv_source(&p, l) == want[l], "share:3 layer %d reads layer %d", l,
              kv_policy_kv_source(&p, l));
    p = parse_ok("window:8");
    CHECK(kv_policy_kv_source(&p, 5) == 5, "a layer reads itself without sharing");
}

/* Past the context: a restart keeps the first S and the last W of ids 0 .. 9, in order. */
static void check_restarts(void) {
    const struct { const char *policy; int keeps; int32_t want[8]; } cases[] = {
        {"window:3", 3, {7, 8, 9}}, {"sinks:2,window:3", 5, {0, 1, 7, 8, 9}}, {"full", 0, {0}},
        {"h2o:2,window:3", 0, {0}}, {"pyramid:1,0.5", 0, {0}}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const kv_policy p = parse_ok(cases[c].policy);
        CHECK(kv_policy_restart_keeps(&p) == cases[c].keeps, "%s keeps %d tokens past the context",
              cases[c].policy, kv_policy_restart_keeps(&p));
        if (cases[c].keeps == 0) continue;
        int32_t ids[10];
        for (int i = 0; i < 10; i++) ids[i] = i;
        const int n = kv_policy_restart_context(&p, ids, 10);
        CHECK(n == cases[c].keeps && memcmp(ids, cases[c].want, (size_t)n * sizeof *ids) == 0,
              "%s: the restart keeps %d tokens, %d %d %d ..", cases[c].policy, n, ids[0], ids[1], ids[2]);
    }
}

int main(void) {
    check_forms();
    check_round_trips();
    check_refused();
    check_against_model();
    check_budgets();
    check_share_sources();
    check_restarts();
    return check_finish("test_kv_policy");
}
