/*
 * The CUDA backend: GPT-2 on the hand-written kernels of kernels/ and cuBLASLt, over a paged KV
 * pool in device memory, for up to max_seqs sequences at once.
 *
 * Everything is sized at load: the fp16 weights in one device allocation (linear weights
 * output-major, [out, in]), the activations for max(max_tokens, max_seqs) rows per forward call,
 * the KV pool (--kv-mem bytes, or a fraction of free memory, never more than max_seqs full
 * contexts), and one pinned staging buffer through which each step's inputs (ids, positions,
 * per-layer slot mappings and block tables, uniforms) go to the device in a single copy, and the
 * sampled ids come back in another. A step allocates nothing.
 *
 * Sequences are slots [0, max_seqs). Two kinds of step:
 * - cuda_model_forward: n new tokens of one sequence (a prompt chunk of any length, or one
 *   token), with logits of the last or of every new position, or the next id sampled on the
 *   device. generate, logits and ppl use it, so the whole forward is checked against the CPU.
 * - cuda_model_decode: one new token for each of n sequences, all through every kernel together,
 *   and the next id of each sampled on the device. Batches are padded to a bucket (1, 2, 4, ..,
 *   max_seqs) and each bucket's step is captured once as a CUDA graph and replayed: the kernels
 *   read ids, positions, block tables and slots from the fixed staging buffer, which the host
 *   rewrites before each replay, and the decode attention grid covers the full context. A padded
 *   row has context length 0 and slot -1: it reads and writes no KV, and its id is dropped.
 * Each row's arithmetic is the same whatever the batch around it (the GEMV and the attention
 * kernels work row by row), so a sequence's text does not depend on the batch it runs in; on a
 * GPU, batches past GEMM_GEMV_MAX_ROWS go through cuBLASLt, whose per-row results this assumes.
 *
 * KV blocks are reserved as sequences grow (cuda_model_reserve says, without failing, whether
 * the pool has room, so that a scheduler can wait or preempt) and freed at once by
 * cuda_model_release. Under the full policy every layer of a sequence holds its own blocks, one
 * table per layer (cache/kv_pool.h).
 *
 * NVTX ranges name the phases for Nsight (README, Profiling): "load" around create; per
 * forward call "prefill" or "decode", holding "embedding", then "layer 0" .. "layer L-1" (each
 * with ln_1, qkv, kv_write, attention, attn_proj, ln_2, mlp_fc, mlp_proj), then "lm_head" and,
 * when ids are drawn, "sample". A graph's ranges are pushed while it is captured, so a replayed
 * decode step shows its "decode" range only; eager_decode shows them all every step.
 *
 * With `unfused`, every bias, GELU and residual add runs as its own kernel after a bare GEMM:
 * the baseline of every fused-against-unfused comparison.
 */
#ifndef GPT2_CUDA_MODEL_H
#define GPT2_CUDA_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/kv_policy.h"
#include "cache/kv_pool.h"
#include "kernels/kernels.h"
#include "model/checkpoint.h"
#include "model/sampler.h"

typedef struct {
    gpt2_f16 *ln_1_w, *ln_1_b;  /* [C] */
    gpt2_f16 *attn_w;           /* [3C, C] */
    gpt2_f16 *attn_b;           /* [3C] */
    gpt2_f16 *attn_proj_w;      /* [C, C] */
    gpt2_f16 *attn_proj_b;      /* [C] */
    gpt2_f16 *ln_2_w, *ln_2_b;  /* [C] */
    gpt2_f16 *fc_w;             /* [4C, C] */
    gpt2_f16 *fc_b;             /* [4C] */
    gpt2_f16 *mlp_proj_w;       /* [C, 4C] */
    gpt2_f16 *mlp_proj_b;       /* [C] */
} cuda_layer_weights;

typedef struct {
    gpt2_f16 *wte;               /* [V, C] */
    gpt2_f16 *wpe;               /* [n_positions, C] */
    cuda_layer_weights *layers;  /* [n_layer] host array of device pointers */
    gpt2_f16 *ln_f_w, *ln_f_b;   /* [C] */
    gpt2_f16 *lm_head;           /* [V, C]; wte when tied */
    void *storage;               /* the one device allocation all of them live in */
    size_t bytes;
} cuda_weights;

/* Device activations for up to max_rows rows. */
typedef struct {
    int max_rows;
    gpt2_f16 *residual;          /* [max_rows, C] */
    gpt2_f16 *normed;            /* [max_rows, C] */
    gpt2_f16 *qkv;               /* [max_rows, 3C] */
    gpt2_f16 *attn_out;          /* [max_rows, C] */
    gpt2_f16 *projected;         /* [max_rows, C] unfused: a projection before its residual add */
    gpt2_f16 *hidden;            /* [max_rows, 4C] */
    float *logits;               /* [max_rows, V] */
    float *attention_workspace;  /* [attention_decode_workspace_bytes / 4] */
    size_t attention_workspace_bytes;
    void *storage;
    size_t bytes;                /* of storage: every buffer above, each aligned */
} cuda_activations;

/*
 * One step's inputs for n_tokens new tokens of n_seqs sequences, packed so that a single copy
 * moves them: on the host in pinned memory, and the same layout on the device. The layout
 * depends only on (n_tokens, n_seqs), so a graph captured for one shape finds its inputs at the
 * same addresses at every replay. The sampled ids and flags at the end go the other way.
 */
typedef struct {
    int32_t *ids;                /* [n_tokens] */
    int32_t *positions;          /* [n_tokens] */
    int64_t *slots;              /* [n_layer, n_tokens] pool slot of each new token, per layer */
    int32_t *block_tables;       /* [n_layer, n_seqs, max_blocks_per_seq] */
    int32_t *query_starts;       /* [n_seqs + 1] first row of each sequence's new tokens */
    int32_t *context_lens;       /* [n_layer, n_seqs] kept + new tokens of each layer */
    int32_t *hole_rows;          /* [n_layer, n_seqs] evicted rows left in each layer's table */
    int32_t *h2o_targets;        /* [n_seqs] H2O: rows each layer keeps after the step (0: none
                                    evicted, inside a prompt) */
    int32_t *merged_rows;        /* [n_layer, n_seqs] MiniCache, at a pair's upper layer: the
                                    sequence's tokens held merged (0 elsewhere) */
    float *uniforms;             /* [n_seqs] the sampler's draws */
    int32_t *next_ids;           /* [n_seqs] device to host, with the rest right after */
    int32_t *nonfinite;          /* [n_seqs] 1 when that row of logits held a NaN or an infinity */
    int32_t *merged_tokens;      /* [n_layer, n_seqs] MiniCache, at a pair's lower layer: the
                                    step's tokens it merged */
    size_t bytes;                /* host to device: ids .. uniforms */
    size_t result_bytes;         /* device to host: next_ids .. merged_tokens (merged_tokens
                                    only under minicache) */
} cuda_step_inputs;

/*
 * The pool's device memory, in one allocation. FP16: k_pages, v_pages. INT8 (cache/kv_quant.h):
 * codes and scales, written quantized by the KV write and read by attention, which dequantizes
 * in registers; no fp16 copy exists. The unfused INT8 baseline adds what its separate kernels
 * need: an fp16 staging page set for one step's new rows (written, then quantized into the
 * pool), and an fp16 copy of one layer's cached K and V for every sequence (dequantized before
 * the fp16 attention reads it).
 */
typedef struct {
    kv_pool_shape shape;
    kv_block_allocator allocator;
    kv_sequence *sequences;      /* [max_seqs] */
    int *cached;                 /* [max_seqs] tokens whose K and V are in the pool */
    void *storage;
    gpt2_f16 *k_pages, *v_pages;   /* FP16: [num_blocks, n_head, block_size, 64] */
    int8_t *k_codes, *v_codes;     /* INT8: [num_blocks, n_head, block_size, 64] */
    gpt2_f16 *k_scales, *v_scales; /* INT8: [num_blocks, n_head, block_size] */
    /* unfused INT8 only */
    gpt2_f16 *staged_k, *staged_v; /* [staged_blocks, n_head, block_size, 64] a step's new rows */
    int staged_blocks;             /* ceil(max_rows / block_size) */
    int64_t *row_slots;            /* [max_rows] row i's staging slot: i */
    gpt2_f16 *dequant_k, *dequant_v; /* [dequant_blocks, n_head, block_size, 64] one layer, fp16 */
    int dequant_blocks;            /* max_seqs * max_blocks_per_seq */
    int32_t *dequant_tables;       /* [max_seqs, max_blocks_per_seq] s * max_blocks_per_seq + b */
    /* H2O only (allocated when the policy is first set) */
    void *h2o_storage;
    float *h2o_scores;             /* [num_blocks, n_head, block_size] accumulated probability */
    int32_t *h2o_positions;        /* [num_blocks, block_size] each row's token position */
    /* MiniCache only (allocated when the policy is first set) */
    void *minicache_storage;
    float *k_ratios, *v_ratios;    /* [num_blocks, n_head, block_size] |upper| / |lower| of each
                                      merged row's heads, at the lower layer's row */
    int *merged;                   /* [max_seqs, n_layer] host: each pair's tokens held merged,
                                      at its lower layer */
} cuda_kv_pool;

typedef struct {
    size_t kv_mem_bytes;         /* the KV pool's budget (0: KV_DEFAULT_FREE_FRACTION of the free
                                    memory); either way at most what max_seqs contexts can fill */
    int block_size;              /* 0: KV_DEFAULT_BLOCK_SIZE */
    int max_tokens;              /* rows of one prefill call; 0: n_positions */
    int max_seqs;                /* sequences at once, the largest decode batch; 0: CUDA_DEFAULT_MAX_SEQS */
    bool eager_decode;           /* run decode steps launch by launch instead of as CUDA graphs */
    bool unfused;                /* bias, GELU, residual adds and INT8 (de)quantization as
                                    kernels of their own */
    bool int8_kv;                /* the pool stores INT8 K and V (else fp16) */
    int device;                  /* the GPU to run on, made current for the calling thread */
} cuda_model_options;

/*
 * Optional phase timing, for gpt2 bench e2e's per-phase breakdown: while cuda_model.phases is
 * not NULL, every step that runs launch by launch (a prefill, or a decode step under
 * eager_decode; never one captured into or replayed from a graph) records an event on the
 * model's stream at the start of each of these NVTX ranges: "embedding", then per layer "ln_1",
 * "qkv", "kv_write", "attention", "attn_proj", "ln_2", "mlp_fc", "mlp_proj", under minicache
 * "kv_merge", then "lm_head" and "sample", and a last one, named NULL, after the results' copy
 * to the host. events[i] to
 * events[i + 1] is the time of phase names[i]. The caller creates the events, sets n to 0 before
 * a step and reads the events once the call has returned (the stream has synchronized). Marks
 * past capacity are not recorded, only counted in dropped.
 */
typedef struct {
    cudaEvent_t *events;         /* [capacity] */
    const char **names;          /* [capacity] the phase that starts at events[i]; NULL: the end */
    int capacity, n, dropped;
} cuda_phase_timer;

#define KV_DEFAULT_FREE_FRACTION 0.5
#define CUDA_DEFAULT_MAX_SEQS 256
#define CUDA_GRAPH_BUCKETS 16    /* decode batch buckets 1, 2, 4, .., 2^15 (at most max_seqs) */

typedef struct {
    gpt2_config config;
    cuda_weights weights;
    cuda_activations act;
    cuda_kv_pool kv;
    int max_tokens, max_seqs;
    int max_blocks_per_seq;        /* table width: ceil(n_positions / block_size) */
    char *host_staging;            /* pinned; cuda_step_inputs views carved from both */
    char *device_staging;
    cuda_step_inputs host, device; /* the current step's views */
    cudaStream_t stream;
    gemm_context *gemm;
    bool eager_decode, unfused;
    cudaGraphExec_t decode_graphs[CUDA_GRAPH_BUCKETS]; /* per batch bucket, captured on first use */
    sampler_params graph_sampling; /* the sampling settings baked into the graphs */
    int graph_vocab;               /* and the vocabulary they sample from */
    cuda_phase_timer *phases;      /* NULL, or events at the phases of eager steps (above) */
    kv_policy policy;              /* what each layer keeps (cuda_model_set_kv_policy) */
    int budget_tokens;             /* the policy's budget (pyramid); n_positions by default */
} cuda_model;

/* Uploads the weights and sizes everything. Returns 0, or -1 with one line in err. */
int cuda_model_create(cuda_model *model, const gpt2_checkpoint *ckpt,
                      const cuda_model_options *options, char *err, size_t err_len);
void cuda_model_destroy(cuda_model *model);

/*
 * The KV policy (cache/kv_policy.h) every sequence runs under from now on; forgets every
 * sequence and every captured decode graph first. The pool enforces full, window, sinks, pyramid and share: after each call a
 * sequence's layers evict what their budget does not keep (budget_tokens scales pyramid's), and
 * the blocks that empties go back to the pool at once; under share a borrowing layer holds no
 * blocks and reads its owner's. Under h2o the decode attention accumulates each row's
 * probability, a prompt runs through it token by token (evicting after its last), and after
 * every step the eviction kernel compacts each layer's rows so that the blocks past them go back
 * (kernels/kv_h2o.cu); the first use allocates the scores (4 bytes per row and head) and
 * positions. Under minicache each pair's lower layer keeps every token, its merged ones first,
 * and the upper layer only its retained ones, reading the merged ones through the lower layer's
 * table scaled by their norm ratios (8 bytes per row and head, allocated on first use); the
 * merge kernel runs after every call (kernels/kv_minicache.cu), its merged counts come back with
 * the step's results, and the blocks the upper layer no longer needs go back to the pool.
 * minicache and h2o are refused with the unfused INT8 baseline. Returns 0, or -1 with one line.
 */
int cuda_model_set_kv_policy(cuda_model *model, const kv_policy *policy, int budget_tokens,
                             char *err, size_t err_len);

/*
 * Logits [n, V] of every position of a fresh sequence 0 under the model's policy, as
 * cpu_model_forward_decoded computes them: under full one prefill; under any other policy the
 * first kv_policy_first_chunk tokens are prefilled, then the rest run one decode step each, so
 * that eviction happens as it does in generation (fits perplexity_forward_fn).
 */
int cuda_model_forward_decoded(void *model, const int32_t *tokens, int n, float *logits,
                               char *err, size_t err_len);

/* Blocks the pool has handed out to sequence seq, and the token rows they keep, all layers together. */
int cuda_model_held_blocks(const cuda_model *model, int seq);
long long cuda_model_held_rows(const cuda_model *model, int seq);
/* minicache: the tokens sequence seq holds merged, over all its pairs (0 under other policies). */
long long cuda_model_merged_tokens(const cuda_model *model, int seq);

/* Forgets every sequence: their blocks go back to the pool. */
void cuda_model_reset(cuda_model *model);
/* Forgets sequence seq (in [0, max_seqs)): its blocks go back to the pool at once. */
void cuda_model_release(cuda_model *model, int seq);
/* Tokens of sequence seq whose K and V are cached: the position of its next token. */
int cuda_model_cached(const cuda_model *model, int seq);

/*
 * Makes room in the pool for n_new more tokens of sequence seq, all or nothing: KV_RESERVED,
 * KV_POOL_FULL (nothing changed: wait, or free another sequence's blocks) or KV_TOO_LONG (past
 * n_positions). The forward calls reserve what they need themselves; a scheduler calls this
 * first to learn whether they would fail.
 */
kv_reserve_status cuda_model_reserve(cuda_model *model, int seq, int n_new);

/*
 * Runs n new tokens at the next positions of sequence seq, storing their K and V in the pool.
 * logits (host, may be NULL): [n, V] of every new position when all_positions, else [V] of the
 * last. next_id (may be NULL): the id that `uniform` draws from the last position under smp's
 * parameters and vocabulary (sampler_pick's rule), computed on the device; smp's own state is
 * not used. Returns 0, or -1 with one line in err (a bad id, the context or the pool exhausted,
 * n outside [1, max_tokens], or, when sampling, a NaN or an infinity among the logits the draw
 * read: the id then means nothing and is not returned, though the tokens stay in the cache).
 */
int cuda_model_forward(cuda_model *model, int seq, const int32_t *tokens, int n,
                       bool all_positions, float *logits, const sampler *smp, float uniform,
                       int32_t *next_id, char *err, size_t err_len);

/*
 * One decode step of n_seqs distinct sequences (1..max_seqs) together: tokens[i] at the next
 * position of sequence seqs[i], then next_ids[i] drawn by uniforms[i] under smp's parameters,
 * as cuda_model_forward draws it. nonfinite[i] is set when row i's logits held a NaN or an
 * infinity (next_ids[i] then means nothing); the other rows are unaffected. Replays the graph
 * of its batch bucket unless eager_decode. Returns 0, or -1 with one line in err (a bad id or
 * sequence, or a sequence without room: reserve first).
 */
int cuda_model_decode(cuda_model *model, int n_seqs, const int *seqs, const int32_t *tokens,
                      const sampler *smp, const float *uniforms, int32_t *next_ids,
                      bool *nonfinite, char *err, size_t err_len);

/* Blocks free in the pool, and how many n_new more tokens of sequence seq would take. */
int cuda_model_free_blocks(const cuda_model *model);
int cuda_model_blocks_needed(const cuda_model *model, int seq, int n_new);

/* Tokens the KV pool can hold for one sequence alone: at most n_positions. */
int cuda_model_kv_capacity(const cuda_model *model);

/* Logits [n, V] of every position of a fresh sequence 0 (fits perplexity_forward_fn). */
int cuda_model_forward_sequence(void *model, const int32_t *tokens, int n, float *logits,
                                char *err, size_t err_len);

#endif
