/*
 * The CUDA backend: GPT-2 on the hand-written kernels of kernels/ and cuBLASLt, over a paged KV
 * pool in device memory.
 *
 * Everything is sized at load: the fp16 weights in one device allocation (linear weights
 * output-major, [out, in]), the activations for max_tokens rows per forward call, the KV pool
 * (--kv-mem bytes, or a fraction of free memory), and one pinned staging buffer through which
 * each step's inputs (ids, positions, slot mapping, block table) go to the device in a single
 * copy. A step allocates nothing.
 *
 * This first form runs one sequence at a time (the varlen kernels already take a batch): a
 * prompt chunk of any length, or one decode token, with logits of the last or of every new
 * position, or the next id sampled on the device. The same calls serve generate, logits and
 * ppl, so the whole CUDA forward is checked against the CPU reference.
 *
 * A decode step that only wants the next id is captured once as a CUDA graph (input copy,
 * every kernel, the sample, the id's copy back) and replayed: the kernels read the position,
 * block table and slot from the fixed staging buffer, which the host rewrites before each
 * replay, and the decode attention grid is sized for the full context.
 *
 * NVTX ranges name the phases for Nsight (README, Profiling): "load" around create; per
 * forward call "prefill" or "decode", holding "embedding", then "layer 0" .. "layer L-1" (each
 * with ln_1, qkv, kv_write, attention, attn_proj, ln_2, mlp_fc, mlp_proj), then "lm_head" and,
 * when an id is drawn, "sample". A graph's ranges are pushed while it is captured, so a
 * replayed decode step shows its "decode" range only; eager_decode shows them all every step.
 */
#ifndef GPT2_CUDA_MODEL_H
#define GPT2_CUDA_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* Device activations for up to max_tokens rows. */
typedef struct {
    int max_tokens;
    gpt2_f16 *residual;          /* [max_tokens, C] */
    gpt2_f16 *normed;            /* [max_tokens, C] */
    gpt2_f16 *qkv;               /* [max_tokens, 3C] */
    gpt2_f16 *attn_out;          /* [max_tokens, C] */
    gpt2_f16 *hidden;            /* [max_tokens, 4C] */
    float *logits;               /* [max_tokens, V] */
    float *attention_workspace;  /* [attention_decode_workspace_bytes / 4] */
    size_t attention_workspace_bytes;
    void *storage;
} cuda_activations;

/* What a sampling step sends back to the host, in one copy. */
typedef struct {
    int32_t next_id;             /* the sampled id */
    int32_t nonfinite;           /* 1 when the sampled row of logits held a NaN or an infinity */
} cuda_step_result;

/*
 * One step's inputs, packed so that a single copy moves them: on the host in pinned memory,
 * and the same layout on the device. The result at the end goes the other way.
 */
typedef struct {
    int32_t *ids;                /* [max_tokens] */
    int32_t *positions;          /* [max_tokens] */
    int64_t *slots;              /* [max_tokens] pool slot of each new token */
    int32_t *block_table;        /* [max_blocks_per_seq] */
    int32_t *query_starts;       /* [2] */
    int32_t *context_lens;       /* [1] */
    float *uniform;              /* [1] the sampler's draw */
    cuda_step_result *result;    /* [1] device to host */
} cuda_step_inputs;

typedef struct {
    kv_pool_shape shape;
    kv_block_allocator allocator;
    kv_sequence sequence;        /* the one sequence of this first form */
    gpt2_f16 *k_pages;           /* [n_layer, num_blocks, n_head, block_size, 64] */
    gpt2_f16 *v_pages;           /* [n_layer, num_blocks, n_head, block_size, 64] */
    size_t layer_elems;          /* num_blocks * n_head * block_size * 64 */
} cuda_kv_pool;

typedef struct {
    size_t kv_mem_bytes;         /* the KV pool's budget (0: KV_DEFAULT_FREE_FRACTION of the free
                                    memory); either way at most what the sequences can fill */
    int block_size;              /* 0: KV_DEFAULT_BLOCK_SIZE */
    int max_tokens;              /* rows of one forward call; 0: n_positions */
    bool eager_decode;           /* run decode steps launch by launch instead of as a CUDA graph */
} cuda_model_options;

#define KV_DEFAULT_FREE_FRACTION 0.5

typedef struct {
    gpt2_config config;
    cuda_weights weights;
    cuda_activations act;
    cuda_kv_pool kv;
    cuda_step_inputs host, device; /* the staging buffer, pinned on the host and on the device */
    size_t step_bytes;
    cudaStream_t stream;
    gemm_context *gemm;
    bool eager_decode;
    cudaGraphExec_t decode_graph;  /* one decode step with its sampled id, captured on first use */
    sampler_params graph_sampling; /* the sampling settings baked into decode_graph */
} cuda_model;

/* Uploads the weights and sizes everything. Returns 0, or -1 with one line in err. */
int cuda_model_create(cuda_model *model, const gpt2_checkpoint *ckpt,
                      const cuda_model_options *options, char *err, size_t err_len);
void cuda_model_destroy(cuda_model *model);

/* Forgets the sequence: its blocks go back to the pool. */
void cuda_model_reset(cuda_model *model);

/*
 * Runs n new tokens at the next positions of the sequence, storing their K and V in the pool.
 * logits (host, may be NULL): [n, V] of every new position when all_positions, else [V] of the
 * last. next_id (may be NULL): the id that `uniform` draws from the last position under smp's
 * parameters and vocabulary (sampler_pick's rule), computed on the device; smp's own state is
 * not used. Returns 0, or -1 with one line in err (a bad id, the context or the pool exhausted,
 * n outside [1, max_tokens], or, when sampling, a NaN or an infinity among the logits the draw
 * read: the id then means nothing and is not returned, though the tokens stay in the cache).
 */
int cuda_model_forward(cuda_model *model, const int32_t *tokens, int n, bool all_positions,
                       float *logits, const sampler *smp, float uniform, int32_t *next_id,
                       char *err, size_t err_len);

/* Tokens the KV pool can hold for the sequence: its blocks times their size, at most n_positions. */
int cuda_model_kv_capacity(const cuda_model *model);

/* Logits [n, V] of every position of a fresh sequence (fits perplexity_forward_fn). */
int cuda_model_forward_sequence(void *model, const int32_t *tokens, int n, float *logits,
                                char *err, size_t err_len);

#endif
