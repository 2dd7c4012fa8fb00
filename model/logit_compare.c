#include "model/logit_compare.h"

#include <math.h>

#include "model/sampler.h"

double logits_log_sum_exp(const float *logits, int n) {
    float max_logit = logits[0];
    for (int i = 1; i < n; i++)
        if (logits[i] > max_logit) max_logit = logits[i];
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - max_logit);
    return log(sum) + max_logit;
}

double logits_kl_divergence(const float *p_logits, const float *q_logits, int n) {
    const double p_norm = logits_log_sum_exp(p_logits, n);
    const double q_norm = logits_log_sum_exp(q_logits, n);
    double kl = 0.0;
    for (int i = 0; i < n; i++) {
        const double log_p = (double)p_logits[i] - p_norm, log_q = (double)q_logits[i] - q_norm;
        kl += exp(log_p) * (log_p - log_q);
    }
    return kl < 0.0 ? 0.0 : kl; /* NaN passes through */
}

void logit_comparison_add(logit_comparison *cmp, const float *reference, const float *test,
                          int n) {
    const double kl = logits_kl_divergence(reference, test, n);
    cmp->rows++;
    cmp->kl_sum += kl;
    if (isnan(kl) || kl > cmp->kl_max) cmp->kl_max = kl; /* a NaN stays once seen */
    cmp->top1_agree += sampler_argmax(reference, n) == sampler_argmax(test, n);
    for (int i = 0; i < n; i++) {
        const double error = fabs((double)test[i] - (double)reference[i]);
        if (isnan(error) || error > cmp->max_abs_error) cmp->max_abs_error = error;
    }
}

double logit_comparison_mean_kl(const logit_comparison *cmp) {
    return cmp->rows ? cmp->kl_sum / (double)cmp->rows : 0.0;
}

double logit_comparison_top1(const logit_comparison *cmp) {
    return cmp->rows ? (double)cmp->top1_agree / (double)cmp->rows : 0.0;
}
