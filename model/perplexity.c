#include "model/perplexity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "model/logit_compare.h"

/* -log softmax(logits)[target], with the log-sum-exp taken in double around the max. */
static double token_nll(const float *logits, int vocab_size, int32_t target) {
    return logits_log_sum_exp(logits, vocab_size) - logits[target];
}

/*
 * Mean NLL over the window's labels: positions [len - trg_len, len) of the window, each
 * predicted by the position before it (so position 0 never counts).
 */
static double window_mean_nll(const float *logits, const int32_t *window, int len, int trg_len,
                              int vocab_size) {
    int first = len - trg_len > 1 ? len - trg_len : 1;
    double sum = 0.0;
    for (int j = first; j < len; j++)
        sum += token_nll(logits + (size_t)(j - 1) * vocab_size, vocab_size, window[j]);
    return sum / (len - first);
}

int perplexity_sliding_window(const int32_t *ids, size_t n, int ctx, int stride, int vocab_size,
                              perplexity_forward_fn forward, void *backend,
                              perplexity_result *result, char *err, size_t err_len) {
    if (n < 2 || ctx < 2 || stride < 1 || stride > ctx) {
        snprintf(err, err_len, "perplexity needs at least 2 tokens and 1 <= stride <= ctx "
                               "(got %zu tokens, ctx %d, stride %d)", n, ctx, stride);
        return -1;
    }
    float *logits = malloc((size_t)ctx * (size_t)vocab_size * sizeof(float));
    if (!logits) {
        snprintf(err, err_len, "out of memory for %d x %d logits", ctx, vocab_size);
        return -1;
    }
    *result = (perplexity_result){0};
    size_t prev_end = 0;
    for (size_t begin = 0; begin < n; begin += (size_t)stride) {
        size_t end = begin + (size_t)ctx < n ? begin + (size_t)ctx : n;
        int len = (int)(end - begin), trg_len = (int)(end - prev_end);
        if (trg_len > 1) { /* a window with one label has weight 0 */
            if (forward(backend, ids + begin, len, logits, err, err_len) != 0) {
                free(logits);
                return -1;
            }
            double loss = window_mean_nll(logits, ids + begin, len, trg_len, vocab_size);
            result->nll_sum += loss * (trg_len - 1);
            result->tokens += trg_len - 1;
            result->windows++;
        }
        prev_end = end;
        if (end == n) break;
    }
    free(logits);
    result->ppl = exp(result->nll_sum / (double)result->tokens);
    return 0;
}
