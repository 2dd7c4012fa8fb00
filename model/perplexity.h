/*
 * Sliding-window perplexity, computed exactly as HuggingFace's perplexity guide does it
 * (https://huggingface.co/docs/transformers/perplexity):
 *
 *   for begin in 0, stride, 2*stride, ...:
 *       end = min(begin + ctx, n); trg_len = end - prev_end
 *       the window is ids[begin:end]; only its last trg_len tokens are labels (the rest -100)
 *       loss = mean next-token NLL over the labels that have a prediction inside the window
 *       nll_sum += loss * (trg_len - 1); n_tokens += trg_len - 1
 *       prev_end = end; stop when end == n
 *   ppl = exp(nll_sum / n_tokens)
 *
 * The guide weights each window's mean loss by trg_len - 1 (its label count less the shifted
 * one); we keep that arithmetic so our numbers and HF's agree to rounding.
 */
#ifndef GPT2_PERPLEXITY_H
#define GPT2_PERPLEXITY_H

#include <stddef.h>
#include <stdint.h>

/*
 * A backend's full forward: logits [n, vocab] for every position of a fresh sequence
 * tokens[0..n). Returns 0, or -1 with a message in err.
 */
typedef int (*perplexity_forward_fn)(void *backend, const int32_t *tokens, int n, float *logits,
                                     char *err, size_t err_len);

typedef struct {
    double ppl;
    double nll_sum;   /* the weighted sum of window losses, in nats */
    long long tokens; /* the guide's n_tokens: the sum of the weights */
    int windows;
} perplexity_result;

/*
 * Requires n >= 2, 2 <= ctx, 1 <= stride <= ctx. Returns 0, or -1 with a message in err.
 */
int perplexity_sliding_window(const int32_t *ids, size_t n, int ctx, int stride, int vocab_size,
                              perplexity_forward_fn forward, void *backend,
                              perplexity_result *result, char *err, size_t err_len);

#endif
