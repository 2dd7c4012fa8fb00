/*
 * Continuous batching over the CUDA engine: many requests (a prompt and a token budget each)
 * through one model, as vLLM schedules them.
 *
 * Each round admits waiting requests while a sequence slot and the KV blocks for their context
 * are free (each admission is a prefill that also draws its first token), then runs one decode
 * step of every running sequence together. A sequence grows one block at a time. When a running
 * sequence needs a block and none is free, the most recently admitted running sequence is
 * preempted: its blocks are freed at once and it waits again, at the head of the queue, with the
 * tokens it has drawn. Readmitted, it recomputes its cache as it was first built: its prompt in
 * one prefill, then its drawn tokens fed again one per decode step, riding along with the
 * batch, before it draws the next. A request finishes at its budget or, with stop_at_eot, at
 * <|endoftext|>, and frees its blocks then.
 *
 * Past the context (the window and sinks KV policies, when they keep fewer tokens than
 * n_positions): a sequence whose cache holds n_positions tokens restarts before it feeds the
 * next one, as gpt2 generate does (cache/kv_policy.h, kv_policy_restart_context): its context
 * becomes the tokens its policy keeps, which one prefill embeds afresh at positions from 0 and
 * which draws its next token. A preempted request is readmitted from the tokens of its last
 * restart, not its prompt.
 *
 * Request i draws from a stream of its own (sampler_stream_uniform, starting at its seed), one
 * uniform per token. Every kernel of a decode step is batch-invariant (model/cuda_model.h) and
 * a recomputed cache is built by the same calls as the first, so a request's tokens equal those
 * of the same request run alone with that seed, bit for bit, whatever the batch and the
 * preemptions. Admission keeps one block per layer free for each running sequence, so that a
 * prefill is rarely undone by the next step's growth.
 */
#ifndef GPT2_SCHEDULER_H
#define GPT2_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

#include "model/cuda_model.h"
#include "model/sampler.h"

typedef enum { REQUEST_WAITING, REQUEST_RUNNING, REQUEST_DONE, REQUEST_FAILED } request_state;

typedef struct {
    /* in */
    const int32_t *prompt;  /* [prompt_len], prompt_len >= 1 */
    int prompt_len;
    int max_new;            /* tokens to draw, >= 0 */
    uint64_t seed;          /* its sampling stream */
    /* out */
    int32_t *generated;     /* [max_new] drawn tokens; a final <|endoftext|> is not kept */
    int n_generated;
    request_state state;
    char error[GPT2_ERR_LEN]; /* why it failed (REQUEST_FAILED): non-finite logits */
    /* the scheduler's */
    uint64_t rng_state;
    int slot;               /* its sequence in the model while running, else -1 */
    int n_fed;              /* drawn tokens whose K and V are in its cache */
    bool drew_eot;
    const int32_t *base;    /* [base_len] what its cache is built from: the prompt, or after a
                               restart past the context the tokens kept then */
    int base_len;
    int base_generated;     /* drawn tokens inside base (0 before any restart) */
    int32_t *kept;          /* [the policy's kept tokens] base after a restart */
} batch_request;

typedef struct {
    int prefills;           /* admissions, recomputations included */
    int decode_steps;
    int preemptions;
    int restarts;           /* contexts restarted past n_positions */
    int largest_batch;      /* most sequences in one decode step */
    long decoded_tokens;    /* tokens drawn by decode steps */
} batch_stats;

/*
 * Runs every request to its end. smp gives the sampling parameters and vocabulary shared by all
 * (its own stream is not used). stop_at_eot ends a request at <|endoftext|> (eot_id).
 * Returns 0 when every request ran (some may have failed alone: REQUEST_FAILED, with its
 * error), or -1 with one line in err when one can never run: its prompt plus budget pass the
 * context (its prompt alone, under a policy that restarts), or more tokens than the whole KV
 * pool holds. Nothing runs then.
 * Every block is back in the pool on return.
 */
int batch_run(cuda_model *model, batch_request *requests, int n_requests, const sampler *smp,
              bool stop_at_eot, int32_t eot_id, batch_stats *stats, char *err, size_t err_len);

#endif
