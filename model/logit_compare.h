/*
 * How far one backend's next-token distributions are from a reference's: KL divergence, top-1
 * agreement and the largest logit error, accumulated row by row. All arithmetic in double.
 */
#ifndef GPT2_LOGIT_COMPARE_H
#define GPT2_LOGIT_COMPARE_H

/* log(sum_i exp(logits[i])), taken around the max so that it neither overflows nor underflows. */
double logits_log_sum_exp(const float *logits /* [n] */, int n);

/*
 * KL(P || Q) in nats, where P = softmax(p_logits) is the reference and Q = softmax(q_logits).
 * Exactly 0 when the rows are equal; never negative (a sum that rounding drives below 0 is 0);
 * NaN when a logit is NaN.
 */
double logits_kl_divergence(const float *p_logits /* [n] */, const float *q_logits /* [n] */,
                            int n);

/* The running comparison of rows under test against reference rows; a NaN anywhere shows. */
typedef struct {
    long long rows;
    double kl_sum;          /* sum over rows of KL(reference || test) */
    double kl_max;
    long long top1_agree;   /* rows whose argmax is the same */
    double max_abs_error;   /* max |test - reference| over every logit of every row */
} logit_comparison;

/* Adds one row pair to the comparison. */
void logit_comparison_add(logit_comparison *cmp, const float *reference /* [n] */,
                          const float *test /* [n] */, int n);
/* Mean KL over the rows and the fraction of rows with the same argmax (0 with no rows). */
double logit_comparison_mean_kl(const logit_comparison *cmp);
double logit_comparison_top1(const logit_comparison *cmp);

#endif
