/*
 * model/logit_compare against values computed by hand: KL of explicit 3-way distributions,
 * zero for equal rows, shift invariance, no overflow at extreme logits, and the running
 * comparison's mean, max, top-1 and logit error.
 */
#include <math.h>
#include <stdio.h>

#include "model/logit_compare.h"
#include "tests/check.h"

#define TOLERANCE 1e-12

static void check_close(double got, double want, const char *what) {
    CHECK(fabs(got - want) <= TOLERANCE * fmax(1.0, fabs(want)), "%s: %.17g, expected %.17g", what,
          got, want);
}

static void check_kl_by_hand(void) {
    /* P = softmax(1, 2, 3), Q = softmax(3, 2, 1): equal normalizers, so
     * KL = sum p_i (a_i - b_i) = 2 (p_3 - p_1) = 2 (e^2 - 1) / (1 + e + e^2). */
    const float a[3] = {1, 2, 3}, b[3] = {3, 2, 1};
    const double e = exp(1.0);
    check_close(logits_kl_divergence(a, b, 3), 2 * (e * e - 1) / (1 + e + e * e), "KL(a || b)");
    check_close(logits_kl_divergence(b, a, 3), 2 * (e * e - 1) / (1 + e + e * e), "KL(b || a)");

    /* P uniform, Q = (1, 1, e) / (2 + e): KL = sum (1/3) log((1/3) / q_i)
     * = -log 3 - (1/3) (3 log(1 / (2 + e)) + 1) = log((2 + e) / 3) - 1/3. */
    const float uniform[3] = {0, 0, 0}, tilted[3] = {0, 0, 1};
    check_close(logits_kl_divergence(uniform, tilted, 3), log((2 + e) / 3) - 1.0 / 3, "KL(u || t)");
    /* And the other way: KL(Q || P) = sum q_i log(3 q_i) = log(3 / (2 + e)) + e / (2 + e). */
    check_close(logits_kl_divergence(tilted, uniform, 3), log(3 / (2 + e)) + e / (2 + e),
                "KL(t || u)");

    check_close(logits_log_sum_exp(a, 3), log(e + e * e + e * e * e), "log-sum-exp");
}

static void check_invariants(void) {
    const float a[4] = {0.5f, -1.25f, 3.0f, 2.0f}, shifted[4] = {5.5f, 3.75f, 8.0f, 7.0f};
    CHECK(logits_kl_divergence(a, a, 4) == 0.0, "KL of equal rows is not exactly 0");
    CHECK(logits_kl_divergence(a, shifted, 4) <= 1e-15, "KL is not shift invariant");
    const float far_a[2] = {0, 1000}, far_b[2] = {1000, 0};
    check_close(logits_kl_divergence(far_a, far_b, 2), 1000.0, "KL at extreme logits");
    const float with_nan[2] = {0, NAN};
    CHECK(isnan(logits_kl_divergence(far_a, with_nan, 2)), "a NaN logit hidden");
}

static void check_running_comparison(void) {
    const float ref[2][3] = {{1, 2, 3}, {0, 0, 0}};
    const float test[2][3] = {{3, 2, 1}, {0, 0, 0.25f}};
    logit_comparison cmp = {0};
    CHECK(logit_comparison_mean_kl(&cmp) == 0.0 && logit_comparison_top1(&cmp) == 0.0, "empty");
    for (int r = 0; r < 2; r++) logit_comparison_add(&cmp, ref[r], test[r], 3);
    const double kl0 = logits_kl_divergence(ref[0], test[0], 3);
    const double kl1 = logits_kl_divergence(ref[1], test[1], 3);
    CHECK(cmp.rows == 2, "rows %lld", cmp.rows);
    check_close(logit_comparison_mean_kl(&cmp), (kl0 + kl1) / 2, "mean KL");
    check_close(cmp.kl_max, kl0 > kl1 ? kl0 : kl1, "max KL");
    /* Row 0: argmax 2 against 0. Row 1: 0 (first of equals) against 2. */
    CHECK(cmp.top1_agree == 0 && logit_comparison_top1(&cmp) == 0.0, "top-1 %lld", cmp.top1_agree);
    check_close(cmp.max_abs_error, 2.0, "max abs logit error");
    logit_comparison_add(&cmp, ref[0], ref[0], 3);
    CHECK(cmp.top1_agree == 1 && fabs(logit_comparison_top1(&cmp) - 1.0 / 3) < TOLERANCE,
          "top-1 after an equal row");
}

int main(void) {
    check_kl_by_hand();
    check_invariants();
    check_running_comparison();
    return check_finish("test_logit_compare");
}
