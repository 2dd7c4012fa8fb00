#include "model/cuda_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nvtx3/nvToolsExt.h>

#include "kernels/cuda_check.h"

#define ALIGN_BYTES 16 /* every device tensor starts on a 16-byte boundary (128-bit loads) */

static size_t align_up(size_t n) { return (n + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES; }

static size_t dtype_bytes(gpt2_dtype dtype) { return dtype == GPT2_F32 ? 4 : 2; }

/* ---- phase timing (cuda_model.phases): an event at each phase's start, eager steps only ---- */

static void phase_mark(cuda_model *m, const char *name /* NULL: the end of the step */) {
    cuda_phase_timer *t = m->phases;
    if (!t) return;
    enum cudaStreamCaptureStatus capture;
    CUDA_CHECK(cudaStreamIsCapturing(m->stream, &capture));
    if (capture != cudaStreamCaptureStatusNone) return;
    if (t->n == t->capacity) {
        t->dropped++;
        return;
    }
    CUDA_CHECK(cudaEventRecord(t->events[t->n], m->stream));
    t->names[t->n++] = name;
}

/* An NVTX range that is also a timed phase. */
static void phase_push(cuda_model *m, const char *name) {
    nvtxRangePushA(name);
    phase_mark(m, name);
}

static convert_source convert_from(gpt2_dtype dtype) {
    return dtype == GPT2_F32 ? CONVERT_FROM_F32 : dtype == GPT2_F16 ? CONVERT_FROM_F16 : CONVERT_FROM_BF16;
}

/* ---------------------------------------------------------------------------------------------
 * Weights: fp16, one device allocation. Conv1D weights [in, out] are stored output-major
 * [out, in], so that the decode GEMV and cuBLAS read each output's weights contiguously.
 */

typedef struct {
    char *next;           /* next free byte of the device storage */
    unsigned char *host;  /* [staging_bytes] pinned: a tensor's bytes in their source dtype */
    void *device_raw;     /* [staging_bytes] the same on the device, before conversion */
    size_t staging_bytes;
    cudaStream_t stream;
} weight_uploader;

/* Copies t into `raw` in its dtype, transposing [rows, cols] to [cols, rows] when asked. */
static void stage_tensor(unsigned char *raw, const gpt2_tensor *t, bool transpose) {
    const size_t es = dtype_bytes(t->dtype);
    if (!transpose) {
        memcpy(raw, t->data, (size_t)t->numel * es);
        return;
    }
    const int64_t rows = t->shape[0], cols = t->shape[1];
    const unsigned char *src = t->data;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            memcpy(raw + ((size_t)c * rows + r) * es, src + ((size_t)r * cols + c) * es, es);
}

static gpt2_f16 *upload(weight_uploader *u, const gpt2_tensor *t, bool transpose) {
    gpt2_f16 *dst = (gpt2_f16 *)u->next;
    u->next += align_up((size_t)t->numel * sizeof(gpt2_f16));
    CUDA_CHECK(cudaStreamSynchronize(u->stream)); /* the staging buffers are free again */
    stage_tensor(u->host, t, transpose);
    const size_t bytes = (size_t)t->numel * dtype_bytes(t->dtype);
    CUDA_CHECK(cudaMemcpyAsync(u->device_raw, u->host, bytes, cudaMemcpyHostToDevice, u->stream));
    launch_convert_to_f16(dst, u->device_raw, convert_from(t->dtype), (size_t)t->numel, u->stream);
    return dst;
}

static size_t weight_bytes(const gpt2_checkpoint *ckpt, size_t *largest) {
    const gpt2_tensor *all[] = {&ckpt->wte, &ckpt->wpe, &ckpt->ln_f_w, &ckpt->ln_f_b, &ckpt->lm_head};
    size_t total = 0;
    *largest = 0;
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        if (all[i] == &ckpt->lm_head && ckpt->lm_head_tied) continue;
        total += align_up((size_t)all[i]->numel * 2);
        if ((size_t)all[i]->numel * 4 > *largest) *largest = (size_t)all[i]->numel * 4;
    }
    for (int l = 0; l < ckpt->config.n_layer; l++) {
        const gpt2_tensor *layer = &ckpt->layers[l].ln_1_w; /* the struct is gpt2_tensors only */
        for (size_t i = 0; i < sizeof(gpt2_layer_tensors) / sizeof(gpt2_tensor); i++) {
            total += align_up((size_t)layer[i].numel * 2);
            if ((size_t)layer[i].numel * 4 > *largest) *largest = (size_t)layer[i].numel * 4;
        }
    }
    return total;
}

static void upload_layer(weight_uploader *u, const gpt2_layer_tensors *src, cuda_layer_weights *dst) {
    dst->ln_1_w = upload(u, &src->ln_1_w, false);
    dst->ln_1_b = upload(u, &src->ln_1_b, false);
    dst->attn_w = upload(u, &src->attn_w, true);
    dst->attn_b = upload(u, &src->attn_b, false);
    dst->attn_proj_w = upload(u, &src->attn_proj_w, true);
    dst->attn_proj_b = upload(u, &src->attn_proj_b, false);
    dst->ln_2_w = upload(u, &src->ln_2_w, false);
    dst->ln_2_b = upload(u, &src->ln_2_b, false);
    dst->fc_w = upload(u, &src->fc_w, true);
    dst->fc_b = upload(u, &src->fc_b, false);
    dst->mlp_proj_w = upload(u, &src->mlp_proj_w, true);
    dst->mlp_proj_b = upload(u, &src->mlp_proj_b, false);
}

/* cudaMalloc that reports, in err, what was needed and what was free. */
static int device_alloc(void **ptr, size_t bytes, const char *what, char *err, size_t err_len) {
    size_t free_bytes = 0, total_bytes = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    if (cudaMalloc(ptr, bytes) == cudaSuccess) return 0;
    cudaGetLastError();
    *ptr = NULL;
    snprintf(err, err_len, "cuda backend: out of GPU memory for the %s: %zu bytes needed, %zu free",
             what, bytes, free_bytes);
    return -1;
}

static int upload_weights(cuda_weights *w, const gpt2_checkpoint *ckpt, cudaStream_t stream,
                          char *err, size_t err_len) {
    size_t largest = 0;
    w->bytes = weight_bytes(ckpt, &largest);
    w->layers = calloc((size_t)ckpt->config.n_layer, sizeof *w->layers);
    if (!w->layers) return snprintf(err, err_len, "cuda backend: out of host memory"), -1;
    if (device_alloc(&w->storage, w->bytes, "weights", err, err_len) != 0) return -1;
    weight_uploader u = {.next = w->storage, .staging_bytes = largest, .stream = stream};
    CUDA_CHECK(cudaMallocHost((void **)&u.host, largest));
    CUDA_CHECK(cudaMalloc(&u.device_raw, largest));
    w->wte = upload(&u, &ckpt->wte, false);
    w->wpe = upload(&u, &ckpt->wpe, false);
    for (int l = 0; l < ckpt->config.n_layer; l++) upload_layer(&u, &ckpt->layers[l], &w->layers[l]);
    w->ln_f_w = upload(&u, &ckpt->ln_f_w, false);
    w->ln_f_b = upload(&u, &ckpt->ln_f_b, false);
    w->lm_head = ckpt->lm_head_tied ? w->wte : upload(&u, &ckpt->lm_head, false);
    CUDA_CHECK(cudaStreamSynchronize(stream));
    CUDA_CHECK(cudaFreeHost(u.host));
    CUDA_CHECK(cudaFree(u.device_raw));
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Activations, the step's staging buffer and the KV pool: all sized here, never per step.
 */

static int alloc_activations(cuda_activations *a, const gpt2_config *c, int max_rows, int max_seqs,
                             char *err, size_t err_len) {
    const size_t T = (size_t)max_rows, C = (size_t)c->n_embd, V = (size_t)c->vocab_size;
    a->max_rows = max_rows;
    a->attention_workspace_bytes = attention_decode_workspace_bytes(max_seqs, c->n_head, c->n_positions);
    const size_t sizes[] = {T * C * 2, T * C * 2, T * 3 * C * 2, T * C * 2, T * C * 2, T * 4 * C * 2,
                            T * V * 4, a->attention_workspace_bytes};
    void **slots[] = {(void **)&a->residual, (void **)&a->normed, (void **)&a->qkv,
                      (void **)&a->attn_out, (void **)&a->projected, (void **)&a->hidden,
                      (void **)&a->logits, (void **)&a->attention_workspace};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) total += align_up(sizes[i]);
    a->bytes = total;
    if (device_alloc(&a->storage, total, "activations", err, err_len) != 0) return -1;
    char *next = a->storage;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        *slots[i] = next;
        next += align_up(sizes[i]);
    }
    return 0;
}

/*
 * Lays out the inputs of a step of n_tokens tokens over n_seqs sequences from base (host or
 * device; NULL only measures). Returns the bytes of the whole layout, results included.
 */
static size_t carve_step_inputs(cuda_step_inputs *s, char *base, int n_tokens, int n_seqs,
                                int n_layer, int max_blocks) {
    size_t offset = 0;
#define CARVE(field, count)                                      \
    s->field = base ? (void *)(base + offset) : NULL;            \
    offset += align_up((size_t)(count) * sizeof *s->field)
    CARVE(ids, n_tokens);
    CARVE(positions, n_tokens);
    CARVE(slots, (size_t)n_layer * n_tokens);
    CARVE(block_tables, (size_t)n_layer * n_seqs * max_blocks);
    CARVE(query_starts, n_seqs + 1);
    CARVE(context_lens, (size_t)n_layer * n_seqs);
    CARVE(hole_rows, (size_t)n_layer * n_seqs);
    CARVE(h2o_targets, n_seqs);
    CARVE(merged_rows, (size_t)n_layer * n_seqs);
    CARVE(uniforms, n_seqs);
    s->bytes = offset;
    CARVE(next_ids, n_seqs);
    CARVE(nonfinite, n_seqs);
    CARVE(merged_tokens, (size_t)n_layer * n_seqs);
    s->result_bytes = offset - s->bytes;
#undef CARVE
    return offset;
}

/* Points the host and device views at the layout of a step of this shape. */
static void use_step_layout(cuda_model *m, int n_tokens, int n_seqs) {
    carve_step_inputs(&m->host, m->host_staging, n_tokens, n_seqs, m->config.n_layer,
                      m->max_blocks_per_seq);
    carve_step_inputs(&m->device, m->device_staging, n_tokens, n_seqs, m->config.n_layer,
                      m->max_blocks_per_seq);
}

static int alloc_staging(cuda_model *m, char *err, size_t err_len) {
    cuda_step_inputs layout;
    const size_t bytes = carve_step_inputs(&layout, NULL, m->act.max_rows, m->max_seqs,
                                           m->config.n_layer, m->max_blocks_per_seq);
    if (cudaMallocHost((void **)&m->host_staging, bytes) != cudaSuccess) {
        cudaGetLastError();
        m->host_staging = NULL;
        return snprintf(err, err_len, "cuda backend: out of pinned host memory (%zu bytes)", bytes), -1;
    }
    return device_alloc((void **)&m->device_staging, bytes, "step inputs", err, err_len);
}

/* The budget given, or a fraction of the free memory; never more than max_seqs contexts use. */
static int pool_blocks(const kv_pool_shape *shape, const gpt2_config *c, size_t kv_mem_bytes,
                       int max_seqs) {
    size_t free_bytes = 0, total_bytes = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const size_t budget = kv_mem_bytes ? kv_mem_bytes
                                       : (size_t)(KV_DEFAULT_FREE_FRACTION * (double)free_bytes);
    const int64_t usable = (int64_t)max_seqs * c->n_layer * CEIL_DIV(c->n_positions, shape->block_size);
    const int blocks = kv_pool_blocks_for_budget(shape, budget);
    return blocks < usable ? blocks : (int)usable;
}

/* The pool's pages (and, unfused INT8, its scratch) carved from one device allocation. */
static int alloc_pool_memory(cuda_kv_pool *kv, const gpt2_config *c, bool unfused, int max_seqs,
                             int max_rows, int max_blocks, char *err, size_t err_len) {
    const size_t row_elems = (size_t)c->n_head * kv->shape.block_size; /* rows of 64 in a block */
    const size_t page_elems = (size_t)kv->shape.num_blocks * row_elems * KV_HEAD_SIZE;
    const bool int8 = kv->shape.format == KV_FORMAT_INT8, scratch = int8 && unfused;
    kv->staged_blocks = scratch ? CEIL_DIV(max_rows, kv->shape.block_size) : 0;
    kv->dequant_blocks = scratch ? max_seqs * max_blocks : 0;
    const size_t staged_elems = (size_t)kv->staged_blocks * row_elems * KV_HEAD_SIZE;
    const size_t dequant_elems = (size_t)kv->dequant_blocks * row_elems * KV_HEAD_SIZE;
    const size_t scale_elems = (size_t)kv->shape.num_blocks * row_elems;
    const size_t sizes[] = {int8 ? 0 : page_elems * 2, int8 ? 0 : page_elems * 2,
                            int8 ? page_elems : 0, int8 ? page_elems : 0,
                            int8 ? scale_elems * 2 : 0, int8 ? scale_elems * 2 : 0,
                            staged_elems * 2, staged_elems * 2, scratch ? (size_t)max_rows * 8 : 0,
                            dequant_elems * 2, dequant_elems * 2,
                            (size_t)kv->dequant_blocks * 4};
    void **slots[] = {(void **)&kv->k_pages, (void **)&kv->v_pages, (void **)&kv->k_codes,
                      (void **)&kv->v_codes, (void **)&kv->k_scales, (void **)&kv->v_scales,
                      (void **)&kv->staged_k, (void **)&kv->staged_v, (void **)&kv->row_slots,
                      (void **)&kv->dequant_k, (void **)&kv->dequant_v,
                      (void **)&kv->dequant_tables};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) total += align_up(sizes[i]);
    if (device_alloc(&kv->storage, total, "KV pool", err, err_len) != 0) return -1;
    char *next = kv->storage;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        *slots[i] = sizes[i] ? next : NULL;
        next += align_up(sizes[i]);
    }
    return 0;
}

/* The unfused INT8 path's fixed maps: staging slot i for row i, and the compact dequant tables. */
static void fill_scratch_maps(cuda_kv_pool *kv, int max_rows, cudaStream_t stream) {
    if (!kv->row_slots) return;
    int64_t *row_slots = malloc((size_t)max_rows * sizeof *row_slots);
    int32_t *tables = malloc((size_t)kv->dequant_blocks * sizeof *tables);
    if (!row_slots || !tables) {
        fprintf(stderr, "cuda backend: out of host memory for the unfused INT8 maps\n");
        exit(EXIT_FAILURE);
    }
    for (int i = 0; i < max_rows; i++) row_slots[i] = i;
    for (int i = 0; i < kv->dequant_blocks; i++) tables[i] = i; /* s * max_blocks + b */
    CUDA_CHECK(cudaMemcpyAsync(kv->row_slots, row_slots, (size_t)max_rows * sizeof *row_slots,
                               cudaMemcpyHostToDevice, stream));
    CUDA_CHECK(cudaMemcpyAsync(kv->dequant_tables, tables, (size_t)kv->dequant_blocks * sizeof *tables,
                               cudaMemcpyHostToDevice, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    free(row_slots);
    free(tables);
}

static int create_pool(cuda_kv_pool *kv, const gpt2_config *c, const cuda_model_options *opt,
                       int max_seqs, int max_rows, cudaStream_t stream, char *err, size_t err_len) {
    kv->shape = (kv_pool_shape){.n_layer = c->n_layer, .n_head = c->n_head,
                                .block_size = opt->block_size ? opt->block_size : KV_DEFAULT_BLOCK_SIZE,
                                .format = opt->int8_kv ? KV_FORMAT_INT8 : KV_FORMAT_FP16};
    kv->shape.num_blocks = pool_blocks(&kv->shape, c, opt->kv_mem_bytes, max_seqs);
    if (kv->shape.num_blocks < c->n_layer) {
        snprintf(err, err_len, "cuda backend: a KV budget of %zu bytes holds %d blocks of %zu bytes, "
                 "and a token needs one in each of the %d layers", opt->kv_mem_bytes,
                 kv->shape.num_blocks, kv_pool_bytes_per_block(&kv->shape), c->n_layer);
        return -1;
    }
    const int max_blocks = CEIL_DIV(c->n_positions, kv->shape.block_size);
    if (alloc_pool_memory(kv, c, opt->unfused, max_seqs, max_rows, max_blocks, err, err_len) != 0)
        return -1;
    fill_scratch_maps(kv, max_rows, stream);
    kv->sequences = calloc((size_t)max_seqs, sizeof *kv->sequences);
    kv->cached = calloc((size_t)max_seqs, sizeof *kv->cached);
    kv->merged = calloc((size_t)max_seqs * c->n_layer, sizeof *kv->merged);
    bool ok = kv->sequences && kv->cached && kv->merged &&
              kv_block_allocator_create(&kv->allocator, &kv->shape) == 0;
    for (int s = 0; ok && s < max_seqs; s++)
        ok = kv_sequence_create(&kv->sequences[s], c->n_layer, c->n_positions, kv->shape.block_size) == 0;
    if (!ok) return snprintf(err, err_len, "cuda backend: out of host memory for the KV bookkeeping"), -1;
    return 0;
}

static void destroy_pool(cuda_kv_pool *kv, int max_seqs) {
    CUDA_CHECK(cudaFree(kv->storage));
    CUDA_CHECK(cudaFree(kv->h2o_storage));
    CUDA_CHECK(cudaFree(kv->minicache_storage));
    for (int s = 0; kv->sequences && s < max_seqs; s++) kv_sequence_destroy(&kv->sequences[s]);
    free(kv->sequences);
    free(kv->cached);
    free(kv->merged);
    kv_block_allocator_destroy(&kv->allocator);
}

static int clamp_option(int value, int fallback, int max) {
    return value >= 1 && value <= max ? value : fallback;
}

static int create_model(cuda_model *model, const gpt2_checkpoint *ckpt,
                        const cuda_model_options *options, char *err, size_t err_len) {
    const gpt2_config *c = &ckpt->config;
    *model = (cuda_model){.config = *c, .eager_decode = options->eager_decode,
                          .unfused = options->unfused, .policy = {.kind = KV_POLICY_FULL},
                          .budget_tokens = c->n_positions};
    if (c->n_embd % 8 != 0)
        return snprintf(err, err_len, "cuda backend: n_embd %d is not a multiple of 8", c->n_embd), -1;
    if (gpt2_cuda_set_device(options->device) != 0)
        return snprintf(err, err_len, "cuda backend: device %d cannot be used", options->device), -1;
    model->max_tokens = clamp_option(options->max_tokens, c->n_positions, c->n_positions);
    model->max_seqs = clamp_option(options->max_seqs, CUDA_DEFAULT_MAX_SEQS, 1 << (CUDA_GRAPH_BUCKETS - 1));
    CUDA_CHECK(cudaStreamCreateWithFlags(&model->stream, cudaStreamNonBlocking));
    model->gemm = gemm_context_create();
    if (!model->gemm) return snprintf(err, err_len, "cuda backend: out of host memory"), -1;
    const int max_rows = model->max_tokens > model->max_seqs ? model->max_tokens : model->max_seqs;
    if (upload_weights(&model->weights, ckpt, model->stream, err, err_len) != 0 ||
        create_pool(&model->kv, c, options, model->max_seqs, max_rows, model->stream, err,
                    err_len) != 0)
        return -1;
    model->max_blocks_per_seq = model->kv.sequences[0].capacity;
    if (alloc_activations(&model->act, c, max_rows, model->max_seqs, err, err_len) != 0 ||
        alloc_staging(model, err, err_len) != 0)
        return -1;
    return 0;
}

int cuda_model_create(cuda_model *model, const gpt2_checkpoint *ckpt,
                      const cuda_model_options *options, char *err, size_t err_len) {
    nvtxRangePushA("load");
    const int rc = create_model(model, ckpt, options, err, err_len);
    if (rc != 0) cuda_model_destroy(model);
    nvtxRangePop();
    return rc;
}

/*
 * Forgets every captured decode graph: they bake in the sampling settings and the KV policy's
 * launches and views, so the next step of each bucket captures its graph again.
 */
static void drop_decode_graphs(cuda_model *m) {
    for (int b = 0; b < CUDA_GRAPH_BUCKETS; b++)
        if (m->decode_graphs[b]) {
            CUDA_CHECK(cudaGraphExecDestroy(m->decode_graphs[b]));
            m->decode_graphs[b] = NULL;
        }
}

void cuda_model_destroy(cuda_model *model) {
    drop_decode_graphs(model);
    CUDA_CHECK(cudaFree(model->weights.storage));
    CUDA_CHECK(cudaFree(model->act.storage));
    destroy_pool(&model->kv, model->max_seqs);
    if (model->host_staging) CUDA_CHECK(cudaFreeHost(model->host_staging));
    CUDA_CHECK(cudaFree(model->device_staging));
    gemm_context_destroy(model->gemm);
    if (model->stream) CUDA_CHECK(cudaStreamDestroy(model->stream));
    free(model->weights.layers);
    *model = (cuda_model){0};
}

/* ---------------------------------------------------------------------------------------------
 * Sequences and their blocks.
 */

/* A sequence slot outside [0, max_seqs) is the caller's bug, not bad input. */
static kv_sequence *sequence(const cuda_model *m, int seq) {
    if (seq < 0 || seq >= m->max_seqs) {
        fprintf(stderr, "cuda backend: sequence %d outside [0, %d): an engine bug\n", seq, m->max_seqs);
        abort();
    }
    return &m->kv.sequences[seq];
}

/* MiniCache: tokens pair (lower, lower + 1) of sequence seq holds merged. */
static int *merged_count(const cuda_model *m, int seq, int lower) {
    return &m->kv.merged[(size_t)seq * m->config.n_layer + lower];
}

void cuda_model_release(cuda_model *model, int seq) {
    kv_sequence_release(&model->kv.allocator, sequence(model, seq));
    model->kv.cached[seq] = 0;
    memset(merged_count(model, seq, 0), 0, (size_t)model->config.n_layer * sizeof(int));
}

void cuda_model_reset(cuda_model *model) {
    for (int s = 0; s < model->max_seqs; s++) cuda_model_release(model, s);
}

/* H2O's scores and positions beside the pool's pages, allocated once. */
static int alloc_h2o_state(cuda_model *m, char *err, size_t err_len) {
    cuda_kv_pool *kv = &m->kv;
    if (kv->h2o_storage) return 0;
    const size_t rows = (size_t)kv->shape.num_blocks * kv->shape.block_size;
    const size_t score_bytes = align_up(rows * m->config.n_head * sizeof(float));
    if (device_alloc(&kv->h2o_storage, score_bytes + rows * sizeof(int32_t), "H2O scores", err,
                     err_len) != 0)
        return -1;
    kv->h2o_scores = kv->h2o_storage;
    kv->h2o_positions = (int32_t *)((char *)kv->h2o_storage + score_bytes);
    return 0;
}

/* MiniCache's norm ratios beside the pool's pages, allocated once. */
static int alloc_minicache_state(cuda_model *m, char *err, size_t err_len) {
    cuda_kv_pool *kv = &m->kv;
    if (kv->minicache_storage) return 0;
    const size_t head_rows = (size_t)kv->shape.num_blocks * kv->shape.block_size * m->config.n_head;
    const size_t ratio_bytes = align_up(head_rows * sizeof(float));
    if (device_alloc(&kv->minicache_storage, 2 * ratio_bytes, "MiniCache ratios", err, err_len) != 0)
        return -1;
    kv->k_ratios = kv->minicache_storage;
    kv->v_ratios = (float *)((char *)kv->minicache_storage + ratio_bytes);
    return 0;
}

int cuda_model_set_kv_policy(cuda_model *model, const kv_policy *policy, int budget_tokens,
                             char *err, size_t err_len) {
    const gpt2_config *c = &model->config;
    char name[64];
    kv_policy_format(policy, name, sizeof name);
    const bool copies = model->unfused && model->kv.shape.format == KV_FORMAT_INT8;
    if ((policy->kind == KV_POLICY_H2O || policy->kind == KV_POLICY_MINICACHE) && copies)
        return snprintf(err, err_len, "cuda backend: KV policy %s does not run on the unfused INT8 "
                        "baseline (its attention reads a dequantized copy)", name), -1;
    if (policy->kind == KV_POLICY_H2O && c->n_positions > 1024)
        return snprintf(err, err_len, "cuda backend: KV policy %s takes contexts of up to 1024 "
                        "tokens (its attention runs in one partition)", name), -1;
    if (kv_policy_check(policy, c->n_layer, err, err_len) != 0) return -1;
    if (policy->kind == KV_POLICY_H2O && alloc_h2o_state(model, err, err_len) != 0) return -1;
    if (policy->kind == KV_POLICY_MINICACHE && alloc_minicache_state(model, err, err_len) != 0)
        return -1;
    if (budget_tokens < 1 || budget_tokens > c->n_positions)
        return snprintf(err, err_len, "cuda backend: a KV budget of %d tokens, expected 1..%d",
                        budget_tokens, c->n_positions), -1;
    cuda_model_reset(model);
    drop_decode_graphs(model); /* captured under the old policy's launches and views */
    model->policy = *policy;
    model->budget_tokens = budget_tokens;
    bool *stores = malloc((size_t)c->n_layer * sizeof *stores);
    if (!stores) return snprintf(err, err_len, "cuda backend: out of host memory"), -1;
    for (int l = 0; l < c->n_layer; l++) stores[l] = kv_policy_kv_source(policy, l) == l;
    for (int seq = 0; seq < model->max_seqs; seq++) kv_sequence_set_stores(sequence(model, seq), stores);
    free(stores);
    return 0;
}

int cuda_model_held_blocks(const cuda_model *model, int seq) {
    const kv_sequence *s = sequence(model, seq);
    int held = 0;
    for (int l = 0; l < s->n_layer; l++) held += s->n_blocks[l];
    return held;
}

long long cuda_model_held_rows(const cuda_model *model, int seq) {
    const kv_sequence *s = sequence(model, seq);
    long long rows = 0;
    for (int l = 0; l < s->n_layer; l++)
        if (s->stores[l]) rows += kv_sequence_kept(s, l, model->kv.cached[seq]);
    return rows;
}

long long cuda_model_merged_tokens(const cuda_model *model, int seq) {
    sequence(model, seq);
    long long merged = 0;
    for (int l = 0; l < model->config.n_layer; l++) merged += *merged_count(model, seq, l);
    return merged;
}

int cuda_model_cached(const cuda_model *model, int seq) {
    sequence(model, seq);
    return model->kv.cached[seq];
}

kv_reserve_status cuda_model_reserve(cuda_model *model, int seq, int n_new) {
    kv_sequence *s = sequence(model, seq);
    const int64_t wanted = (int64_t)model->kv.cached[seq] + n_new;
    if (wanted > model->config.n_positions) return KV_TOO_LONG;
    if (wanted <= s->n_tokens) return KV_RESERVED;
    return kv_sequence_reserve(&model->kv.allocator, s, (int)(wanted - s->n_tokens));
}

int cuda_model_free_blocks(const cuda_model *model) { return model->kv.allocator.n_free; }

int cuda_model_blocks_needed(const cuda_model *model, int seq, int n_new) {
    const kv_sequence *s = sequence(model, seq);
    const int64_t missing = (int64_t)model->kv.cached[seq] + n_new - s->n_tokens;
    return missing > 0 ? kv_sequence_blocks_needed(s, (int)missing) : 0;
}

int cuda_model_kv_capacity(const cuda_model *model) {
    const int tokens = kv_pool_tokens_per_sequence(&model->kv.shape);
    return tokens < model->config.n_positions ? tokens : model->config.n_positions;
}

/* ---------------------------------------------------------------------------------------------
 * The forward pass, in order.
 */

/* What one forward call runs: n_rows rows, one per token, of n_seqs sequences. */
typedef struct {
    int n_rows;  /* tokens, padded rows of a decode bucket included */
    int n_seqs;  /* sequences, padded ones included */
    bool decode; /* one token per sequence: the decode kernels */
} step_shape;

/* The staged kept lengths (cached + new) of this layer's sequences: [n_seqs]. */
static const int32_t *layer_context_lens(const cuda_model *m, int layer, int n_seqs) {
    return m->device.context_lens + (size_t)layer * n_seqs;
}

/* MiniCache: whether layer `layer` is the lower layer of a pair (its partner is layer + 1). */
static bool merges_with_next(const cuda_model *m, int layer) {
    const kv_policy *p = &m->policy;
    return p->kind == KV_POLICY_MINICACHE && layer >= p->first_layer &&
           (layer - p->first_layer) % 2 == 0 && layer + 1 < m->config.n_layer;
}

/* MiniCache: whether layer `layer` is the upper layer of a pair, reading merged rows. */
static bool reads_merged(const cuda_model *m, int layer) {
    return layer >= 1 && merges_with_next(m, layer - 1);
}

/* The staged block tables of this layer: [n_seqs, max_blocks_per_seq]. */
static const int32_t *layer_tables(const cuda_model *m, int layer, int n_seqs) {
    return m->device.block_tables + (size_t)layer * n_seqs * m->max_blocks_per_seq;
}

static paged_kv_format pool_format(const cuda_kv_pool *kv) {
    return kv->shape.format == KV_FORMAT_INT8 ? PAGED_KV_INT8 : PAGED_KV_FP16;
}

/* This layer's block tables over the pool's pages (of either format), as the kernels read them. */
static paged_kv_layer layer_view(const cuda_model *m, int layer, int n_seqs) {
    const cuda_kv_pool *kv = &m->kv;
    const bool merged = reads_merged(m, layer);
    return (paged_kv_layer){.k = kv->k_pages, .v = kv->v_pages,
                            .block_tables = layer_tables(m, layer, n_seqs),
                            .max_blocks_per_seq = m->max_blocks_per_seq,
                            .block_size = kv->shape.block_size,
                            .n_head = m->config.n_head,
                            .format = pool_format(kv),
                            .k_codes = kv->k_codes, .v_codes = kv->v_codes,
                            .k_scales = kv->k_scales, .v_scales = kv->v_scales,
                            .hole_rows = m->device.hole_rows + (size_t)layer * n_seqs,
                            .sink_rows = m->policy.kind == KV_POLICY_SINKS ? m->policy.sinks : 0,
                            .h2o_scores = m->policy.kind == KV_POLICY_H2O ? kv->h2o_scores : NULL,
                            .merged_tables = merged ? layer_tables(m, layer - 1, n_seqs) : NULL,
                            .merged_rows = merged ? m->device.merged_rows + (size_t)layer * n_seqs : NULL,
                            .k_ratios = merged ? kv->k_ratios : NULL,
                            .v_ratios = merged ? kv->v_ratios : NULL};
}

/* H2O: the new rows' state, before attention accumulates into it. */
static void h2o_init_rows(cuda_model *m, int layer, const step_shape *step) {
    const cuda_kv_pool *kv = &m->kv;
    launch_kv_h2o_init(kv->h2o_scores, kv->h2o_positions, m->device.slots + (size_t)layer * step->n_rows,
                       m->device.positions, step->n_rows, m->config.n_head, kv->shape.block_size,
                       kv->shape.num_blocks, m->stream);
}

/* H2O: each sequence's rows of this layer compacted to its staged target, after attention. */
static void h2o_evict(cuda_model *m, int layer, const step_shape *step) {
    cuda_kv_pool *kv = &m->kv;
    const kv_h2o_pages pages = {.k = kv->k_pages, .v = kv->v_pages, .k_codes = kv->k_codes,
                                .v_codes = kv->v_codes, .k_scales = kv->k_scales,
                                .v_scales = kv->v_scales, .h2o_scores = kv->h2o_scores,
                                .h2o_positions = kv->h2o_positions};
    const paged_kv_layer view = layer_view(m, layer, step->n_seqs);
    launch_kv_h2o_evict(pages, view.format, view.block_tables, m->max_blocks_per_seq,
                        m->config.n_head, kv->shape.block_size,
                        layer_context_lens(m, layer, step->n_seqs), m->device.h2o_targets,
                        m->policy.window, step->n_seqs, m->stream);
}

/*
 * The new tokens' K and V (columns [C, 3C) of qkv) into the pool at this layer's slots:
 * quantized on the way for INT8, or (unfused INT8) written as fp16 to the staging pages and
 * then quantized from there by a kernel of its own.
 */
static void write_kv(cuda_model *m, int layer, const step_shape *step) {
    cuda_kv_pool *kv = &m->kv;
    const int n = step->n_rows, H = m->config.n_head, B = kv->shape.block_size, C = m->config.n_embd;
    const int64_t *slots = m->device.slots + (size_t)layer * n;
    if (kv->shape.format == KV_FORMAT_FP16) {
        launch_kv_write_fp16(kv->k_pages, kv->v_pages, m->act.qkv, 3 * C, slots, n, H, B,
                             kv->shape.num_blocks, m->stream);
    } else if (!m->unfused) {
        launch_kv_write_int8(kv->k_codes, kv->k_scales, kv->v_codes, kv->v_scales, m->act.qkv,
                             3 * C, slots, n, H, B, kv->shape.num_blocks, m->stream);
    } else {
        launch_kv_write_fp16(kv->staged_k, kv->staged_v, m->act.qkv, 3 * C, kv->row_slots, n, H, B,
                             kv->staged_blocks, m->stream);
        launch_kv_quantize(kv->k_codes, kv->k_scales, kv->v_codes, kv->v_scales,
                           kv->shape.num_blocks, kv->staged_k, kv->staged_v, kv->staged_blocks,
                           kv->row_slots, slots, n, H, B, m->stream);
    }
}

/*
 * The pages attention reads for this layer: the pool itself, or (unfused INT8) an fp16 copy of
 * every sequence's cached rows, dequantized first by a kernel of its own.
 */
static paged_kv_layer attention_view(cuda_model *m, int layer, const step_shape *step) {
    const paged_kv_layer pool = layer_view(m, layer, step->n_seqs);
    const cuda_kv_pool *kv = &m->kv;
    if (pool.format == PAGED_KV_FP16 || !m->unfused) return pool;
    nvtxRangePushA("kv_dequantize");
    launch_kv_dequantize(kv->dequant_k, kv->dequant_v, kv->dequant_tables, kv->dequant_blocks, pool,
                         layer_context_lens(m, layer, step->n_seqs), step->n_seqs,
                         m->config.n_positions, m->stream);
    nvtxRangePop();
    return (paged_kv_layer){.k = kv->dequant_k, .v = kv->dequant_v,
                            .block_tables = kv->dequant_tables,
                            .max_blocks_per_seq = pool.max_blocks_per_seq,
                            .block_size = pool.block_size, .n_head = pool.n_head,
                            .hole_rows = pool.hole_rows, .sink_rows = pool.sink_rows};
}

/*
 * y = epilogue(x w^T + bias): fused into the GEMM, or (unfused) a bare GEMM and then the bias,
 * GELU and residual add as kernels of their own. Decode steps use the batch-invariant GEMV at
 * any batch; prefill picks the GEMV or cuBLASLt by rows.
 */
static void linear(cuda_model *m, const step_shape *step, gpt2_f16 *y, int y_stride,
                   const gpt2_f16 *x, int x_stride, const gpt2_f16 *w, const gpt2_f16 *bias,
                   int K, int N, linear_epilogue epilogue) {
    const int rows = step->n_rows;
    gpt2_f16 *residual = epilogue == LINEAR_RESIDUAL ? y : NULL;
    if (m->unfused) { /* the residual add's GEMM output goes to scratch first */
        gpt2_f16 *out = residual ? m->act.projected : y;
        const int out_stride = residual ? N : y_stride;
        if (step->decode)
            launch_gemv_f16(out, out_stride, x, x_stride, w, NULL, NULL, 0, rows, K, N, LINEAR_PLAIN, m->stream);
        else
            launch_linear(m->gemm, out, out_stride, x, x_stride, w, NULL, NULL, 0, rows, K, N,
                          LINEAR_PLAIN, m->stream);
        if (epilogue == LINEAR_GELU) launch_bias_gelu(out, bias, rows, N, m->stream);
        else launch_add_bias(out, bias, rows, N, m->stream);
        if (residual) launch_residual_add(residual, out, (size_t)rows * N, m->stream);
        return;
    }
    if (step->decode)
        launch_gemv_f16(y, y_stride, x, x_stride, w, bias, residual, y_stride, rows, K, N, epilogue,
                        m->stream);
    else
        launch_linear(m->gemm, y, y_stride, x, x_stride, w, bias, residual, y_stride, rows, K, N,
                      epilogue, m->stream);
}

/* One transformer block on the step's rows of the residual stream (ln_1 already in normed). */
static void block_forward(cuda_model *m, int layer, const step_shape *step) {
    const gpt2_config *c = &m->config;
    const cuda_layer_weights *w = &m->weights.layers[layer];
    cuda_activations *a = &m->act;
    const int C = c->n_embd, n = step->n_rows;
    cudaStream_t s = m->stream;

    const int source = kv_policy_kv_source(&m->policy, layer); /* whose K and V it reads */
    /* A borrower projects its query only (Q-aligned: with the owner's weights) and stores no KV. */
    const cuda_layer_weights *q_from = source != layer && m->policy.qalign ? &m->weights.layers[source] : w;
    phase_push(m, "qkv");
    linear(m, step, a->qkv, 3 * C, a->normed, C, q_from->attn_w, q_from->attn_b, C,
           source == layer ? 3 * C : C, LINEAR_PLAIN);
    nvtxRangePop();
    const bool h2o = m->policy.kind == KV_POLICY_H2O;
    if (source == layer) {
        phase_push(m, "kv_write");
        write_kv(m, layer, step);
        if (h2o) h2o_init_rows(m, layer, step);
        nvtxRangePop();
    }
    phase_push(m, "attention");
    const paged_kv_layer kv = attention_view(m, source, step);
    const int32_t *context_lens = layer_context_lens(m, source, step->n_seqs);
    if (step->decode) /* the grid covers the whole context, so that one graph serves every step */
        launch_attention_decode(a->attn_out, a->attention_workspace, a->attention_workspace_bytes,
                                a->qkv, 3 * C, kv, context_lens, step->n_seqs, c->n_positions, s);
    else
        launch_attention_prefill(a->attn_out, C, a->qkv, 3 * C, kv, m->device.query_starts,
                                 context_lens, step->n_seqs, n, s);
    if (h2o) h2o_evict(m, layer, step);
    nvtxRangePop();
    phase_push(m, "attn_proj");
    linear(m, step, a->residual, C, a->attn_out, C, w->attn_proj_w, w->attn_proj_b, C, C,
           LINEAR_RESIDUAL);
    nvtxRangePop();
    phase_push(m, "ln_2");
    launch_layernorm(a->normed, a->residual, w->ln_2_w, w->ln_2_b, n, C, c->layer_norm_eps, s);
    nvtxRangePop();
    phase_push(m, "mlp_fc");
    linear(m, step, a->hidden, 4 * C, a->normed, C, w->fc_w, w->fc_b, C, 4 * C, LINEAR_GELU);
    nvtxRangePop();
    phase_push(m, "mlp_proj");
    linear(m, step, a->residual, C, a->hidden, 4 * C, w->mlp_proj_w, w->mlp_proj_b, 4 * C, C,
           LINEAR_RESIDUAL);
    nvtxRangePop();
}

static int check_ids(const cuda_model *m, const int32_t *tokens, int n, char *err, size_t err_len) {
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= m->config.vocab_size)
            return snprintf(err, err_len, "cuda backend: token id %d out of range [0, %d)", tokens[t],
                            m->config.vocab_size), -1;
    return 0;
}

/* Room in the pool for n more tokens of seq, or one line in err. */
static int reserve_or_fail(cuda_model *m, int seq, int n, char *err, size_t err_len) {
    const int cached = m->kv.cached[seq];
    switch (cuda_model_reserve(m, seq, n)) {
    case KV_RESERVED: return 0;
    case KV_TOO_LONG:
        return snprintf(err, err_len, "cuda backend: %d cached + %d new tokens exceed n_positions = %d",
                        cached, n, m->config.n_positions), -1;
    case KV_POOL_FULL: break;
    }
    return snprintf(err, err_len, "cuda backend: the KV pool (%d blocks of %d tokens, %d free) cannot "
                    "hold %d more tokens of this sequence; give --kv-mem more bytes",
                    m->kv.shape.num_blocks, m->kv.shape.block_size, m->kv.allocator.n_free, n), -1;
}

/* Row `row` of the staged step: new token `token` at position pos of sequence seq. */
static void stage_token(cuda_model *m, int row, int n_rows, int seq, int32_t token, int pos) {
    cuda_step_inputs *h = &m->host;
    const kv_sequence *s = sequence(m, seq);
    h->ids[row] = token;
    h->positions[row] = pos;
    for (int l = 0; l < m->config.n_layer; l++)
        h->slots[(size_t)l * n_rows + row] = kv_sequence_slot(s, l, pos);
}

/*
 * Sequence seq's block tables in staged sequence row `row` of n_seqs, with each layer's kept
 * length once its n_new tokens are in (the attention kernels' context), its eviction hole and,
 * at a MiniCache pair's upper layer, the merged rows it reads first (its own rows after).
 */
static void stage_tables(cuda_model *m, int row, int n_seqs, int seq, int n_new) {
    const kv_sequence *s = sequence(m, seq);
    const int width = m->max_blocks_per_seq, cached = m->kv.cached[seq];
    for (int l = 0; l < m->config.n_layer; l++) {
        const size_t at = (size_t)l * n_seqs + row;
        const int merged = reads_merged(m, l) ? *merged_count(m, seq, l - 1) : 0;
        memcpy(m->host.block_tables + at * width, kv_sequence_table(s, l),
               (size_t)s->n_blocks[l] * sizeof(int32_t));
        m->host.context_lens[at] = merged + kv_sequence_kept(s, l, cached) + n_new;
        m->host.hole_rows[at] = kv_sequence_hole_rows(s, l);
        m->host.merged_rows[at] = merged;
    }
}

/*
 * MiniCache after a call of n_new tokens of sequence seq (staged row `row` of n_seqs): each
 * pair's upper layer keeps only the tokens the merge kernel retained, in its first rows, and the
 * blocks past them go back to the pool.
 */
static void keep_retained(cuda_model *m, int seq, int row, int n_seqs, int n_new) {
    kv_sequence *s = sequence(m, seq);
    const int cached = m->kv.cached[seq]; /* the call's tokens included */
    for (int l = 0; l + 1 < m->config.n_layer; l++) {
        if (!merges_with_next(m, l)) continue;
        const int merged_now = m->host.merged_tokens[(size_t)l * n_seqs + row];
        const int own = kv_sequence_kept(s, l + 1, cached - n_new) + n_new - merged_now;
        *merged_count(m, seq, l) += merged_now;
        kv_sequence_compact(&m->kv.allocator, s, l + 1, cached, own);
    }
}

/*
 * After a call wrote sequence seq's n_new tokens (staged row `row` of n_seqs): every layer drops
 * what its policy does not keep (cache/kv_policy.h), and the blocks that empties go back to the
 * pool.
 */
static void evict(cuda_model *m, int seq, int row, int n_seqs, int n_new) {
    const kv_policy *p = &m->policy;
    if (p->kind == KV_POLICY_FULL || p->kind == KV_POLICY_SHARE) return;
    if (p->kind == KV_POLICY_MINICACHE) {
        keep_retained(m, seq, row, n_seqs, n_new);
        return;
    }
    kv_sequence *s = sequence(m, seq);
    const int sinks = p->kind == KV_POLICY_SINKS ? p->sinks : 0, L = m->config.n_layer;
    for (int l = 0; l < L; l++) {
        const int keep = kv_policy_layer_budget(p, l, L, m->budget_tokens);
        if (p->kind == KV_POLICY_H2O) /* the device has compacted the rows (h2o_evict) */
            kv_sequence_compact(&m->kv.allocator, s, l, m->kv.cached[seq], keep);
        else
            kv_sequence_evict(&m->kv.allocator, s, l, m->kv.cached[seq], sinks, keep);
    }
}

/* A padded row of a decode bucket: no KV read (context 0) and none written (slot -1). */
static void stage_padding(cuda_model *m, int row, int n_rows) {
    cuda_step_inputs *h = &m->host;
    h->ids[row] = 0;
    h->positions[row] = 0;
    for (int l = 0; l < m->config.n_layer; l++) {
        h->slots[(size_t)l * n_rows + row] = -1;
        h->context_lens[(size_t)l * n_rows + row] = 0;
        h->hole_rows[(size_t)l * n_rows + row] = 0;
        h->merged_rows[(size_t)l * n_rows + row] = 0;
    }
    h->query_starts[row + 1] = row + 1;
    h->uniforms[row] = 0.0f;
    h->h2o_targets[row] = 0;
}

/* ln_f and the LM head over `rows` rows from row `first`: logits [rows, V] on the device. */
static void head_forward(cuda_model *m, const step_shape *step, int first, int rows) {
    const gpt2_config *c = &m->config;
    cuda_activations *a = &m->act;
    const int C = c->n_embd, V = c->vocab_size;
    phase_push(m, "lm_head");
    launch_layernorm(a->normed, a->residual + (size_t)first * C, m->weights.ln_f_w,
                     m->weights.ln_f_b, rows, C, c->layer_norm_eps, m->stream);
    if (step->decode)
        launch_gemv_f32_out(a->logits, V, a->normed, C, m->weights.lm_head, rows, C, V, m->stream);
    else
        launch_linear_f32_out(m->gemm, a->logits, V, a->normed, C, m->weights.lm_head, rows, C, V,
                              m->stream);
    nvtxRangePop();
}

/* The step's results (ids, flags; under minicache its merged counts) to the host, in one copy. */
static void fetch_results(cuda_model *m) {
    const cuda_step_inputs *h = &m->host;
    const size_t bytes = m->policy.kind == KV_POLICY_MINICACHE
                             ? h->result_bytes
                             : (size_t)((char *)h->merged_tokens - (char *)h->next_ids);
    CUDA_CHECK(cudaMemcpyAsync(h->next_ids, m->device.next_ids, bytes, cudaMemcpyDeviceToHost,
                               m->stream));
}

/*
 * The ids the staged uniforms draw from `rows` rows of logits from row `first` (overwritten:
 * they are the scratch), and whether each row held a NaN or an infinity, checked first; both
 * come back in one copy. A vocabulary narrower than the logits' rows (a checkpoint wider than the
 * tokenizer) is sampled row by row.
 */
static void sample_forward(cuda_model *m, int first, int rows, const sampler *smp) {
    const int V = m->config.vocab_size, sample_v = smp->vocab_size;
    const sampler_params *p = &smp->params;
    cuda_step_inputs *d = &m->device;
    phase_push(m, "sample");
    const int per_launch = sample_v == V ? rows : 1;
    for (int r = 0; r < rows; r += per_launch) {
        float *logits = m->act.logits + (size_t)(first + r) * V;
        launch_find_nonfinite(d->nonfinite + r, logits, per_launch, sample_v, m->stream);
        launch_sample(d->next_ids + r, logits, d->uniforms + r, logits, per_launch, sample_v,
                      p->temperature, p->top_k, p->top_p, m->stream);
    }
    nvtxRangePop();
    fetch_results(m);
    phase_mark(m, NULL);
}

/* MiniCache: every pair merges the step's tokens (kernels/kv_minicache.cu), its counts staged back. */
static void merge_pairs(cuda_model *m, const step_shape *step) {
    cuda_kv_pool *kv = &m->kv;
    const int first = m->policy.first_layer, n_pairs = (m->config.n_layer - first) / 2;
    if (n_pairs < 1) return;
    const kv_minicache_pages pages = {.k = kv->k_pages, .v = kv->v_pages, .k_codes = kv->k_codes,
                                      .v_codes = kv->v_codes, .k_scales = kv->k_scales,
                                      .v_scales = kv->v_scales, .k_ratios = kv->k_ratios,
                                      .v_ratios = kv->v_ratios};
    const cuda_step_inputs *d = &m->device;
    phase_push(m, "kv_merge");
    launch_kv_minicache_merge(pages, pool_format(kv), d->block_tables,
                              m->max_blocks_per_seq, m->config.n_head, kv->shape.block_size,
                              d->context_lens, d->merged_rows, d->query_starts, first, n_pairs,
                              step->n_seqs, d->merged_tokens, m->stream);
    nvtxRangePop();
}

/* The layers, in order, over the step's rows (embedded into the residual stream first). */
static void layers_forward(cuda_model *m, const step_shape *step) {
    const gpt2_config *c = &m->config;
    cuda_activations *a = &m->act;
    const int n = step->n_rows;
    phase_push(m, "embedding");
    launch_embedding(a->residual, m->device.ids, m->device.positions, m->weights.wte,
                     m->weights.wpe, n, c->n_embd, c->vocab_size, c->n_positions, m->stream);
    nvtxRangePop();
    for (int l = 0; l < c->n_layer; l++) {
        char layer_name[24];
        snprintf(layer_name, sizeof layer_name, "layer %d", l);
        nvtxRangePushA(layer_name);
        phase_push(m, "ln_1");
        launch_layernorm(a->normed, a->residual, m->weights.layers[l].ln_1_w,
                         m->weights.layers[l].ln_1_b, n, c->n_embd, c->layer_norm_eps, m->stream);
        nvtxRangePop();
        block_forward(m, l, step);
        nvtxRangePop();
    }
    if (m->policy.kind == KV_POLICY_MINICACHE) merge_pairs(m, step);
}

/* The staged inputs to the device, in one copy. */
static void upload_step_inputs(cuda_model *m) {
    CUDA_CHECK(cudaMemcpyAsync(m->device_staging, m->host_staging, m->host.bytes,
                               cudaMemcpyHostToDevice, m->stream));
}

/* ---------------------------------------------------------------------------------------------
 * One sequence: a prompt chunk or one token.
 */

static int check_forward_args(const cuda_model *m, const int32_t *tokens, int n, char *err,
                              size_t err_len) {
    if (n < 1 || n > m->max_tokens)
        return snprintf(err, err_len, "cuda backend: %d tokens in one call, expected 1..%d", n,
                        m->max_tokens), -1;
    return check_ids(m, tokens, n, err, err_len);
}

/* Logits (all_positions: of every new row) to the host, and the last row's id when asked. */
static void enqueue_sequence_step(cuda_model *m, const step_shape *step, bool all_positions,
                                  float *logits, const sampler *smp, bool sample) {
    const int V = m->config.vocab_size, rows = all_positions ? step->n_rows : 1;
    upload_step_inputs(m);
    layers_forward(m, step);
    head_forward(m, step, step->n_rows - rows, rows);
    if (logits)
        CUDA_CHECK(cudaMemcpyAsync(logits, m->act.logits, (size_t)rows * V * sizeof(float),
                                   cudaMemcpyDeviceToHost, m->stream));
    if (sample) sample_forward(m, rows - 1, 1, smp); /* the last row; the results with its id */
    else if (m->policy.kind == KV_POLICY_MINICACHE) fetch_results(m);
}

static void replay_decode_graph(cuda_model *m, const step_shape *step, const sampler *smp);

/* The rows each layer of a sequence keeps after this step under H2O; 0: none evicted. */
static int h2o_target(const cuda_model *m, bool evicts) {
    return m->policy.kind == KV_POLICY_H2O && evicts ? m->policy.heavy + m->policy.window : 0;
}

/*
 * cuda_model_forward's call, its room already reserved; `evicts`: the policy evicts after it
 * (false only inside an H2O prompt, which runs token by token).
 */
static int forward_call(cuda_model *model, int seq, const int32_t *tokens, int n,
                        bool all_positions, float *logits, const sampler *smp, float uniform,
                        int32_t *next_id, bool evicts, char *err, size_t err_len) {
    const int pos0 = model->kv.cached[seq];
    const step_shape step = {.n_rows = n, .n_seqs = 1, .decode = n == 1};
    nvtxRangePushA(n == 1 ? "decode" : "prefill");
    use_step_layout(model, n, 1);
    for (int t = 0; t < n; t++) stage_token(model, t, n, seq, tokens[t], pos0 + t);
    stage_tables(model, 0, 1, seq, n);
    model->host.query_starts[0] = 0;
    model->host.query_starts[1] = n;
    model->host.uniforms[0] = uniform;
    model->host.h2o_targets[0] = h2o_target(model, evicts);
    if (step.decode && next_id && !logits && !model->eager_decode)
        replay_decode_graph(model, &step, smp);
    else
        enqueue_sequence_step(model, &step, all_positions, logits, smp, next_id != NULL);
    CUDA_CHECK(cudaStreamSynchronize(model->stream));
    nvtxRangePop();
    model->kv.cached[seq] = pos0 + n;
    if (evicts) evict(model, seq, 0, 1, n);
    if (!next_id) return 0;
    if (model->host.nonfinite[0])
        return snprintf(err, err_len, "cuda backend: the logits at the sampled position are not "
                        "finite (NaN or inf)"), -1;
    *next_id = model->host.next_ids[0];
    return 0;
}

int cuda_model_forward(cuda_model *model, int seq, const int32_t *tokens, int n,
                       bool all_positions, float *logits, const sampler *smp, float uniform,
                       int32_t *next_id, char *err, size_t err_len) {
    if (check_forward_args(model, tokens, n, err, err_len) != 0 ||
        reserve_or_fail(model, seq, n, err, err_len) != 0)
        return -1;
    if (model->policy.kind != KV_POLICY_H2O || n == 1)
        return forward_call(model, seq, tokens, n, all_positions, logits, smp, uniform, next_id,
                            true, err, err_len);
    /* H2O scores accumulate in the decode attention: the prompt goes through it token by token,
       every query scoring the rows before it, and eviction waits for the last token. */
    const int V = model->config.vocab_size;
    for (int t = 0; t < n; t++) {
        const bool last = t == n - 1;
        float *row = logits && (all_positions || last) ? logits + (all_positions ? (size_t)t * V : 0) : NULL;
        if (forward_call(model, seq, tokens + t, 1, false, row, smp, uniform, last ? next_id : NULL,
                         last, err, err_len) != 0)
            return -1;
    }
    return 0;
}

int cuda_model_forward_sequence(void *model, const int32_t *tokens, int n, float *logits,
                                char *err, size_t err_len) {
    cuda_model_release(model, 0);
    return cuda_model_forward(model, 0, tokens, n, true, logits, NULL, 0.0f, NULL, err, err_len);
}

int cuda_model_forward_decoded(void *model_ptr, const int32_t *tokens, int n, float *logits,
                               char *err, size_t err_len) {
    cuda_model *m = model_ptr;
    if (m->policy.kind == KV_POLICY_FULL)
        return cuda_model_forward_sequence(m, tokens, n, logits, err, err_len);
    const int V = m->config.vocab_size;
    const int first = kv_policy_first_chunk(&m->policy, m->config.n_layer, m->budget_tokens,
                                            m->max_tokens, n);
    cuda_model_release(m, 0);
    if (cuda_model_forward(m, 0, tokens, first, true, logits, NULL, 0.0f, NULL, err, err_len) != 0)
        return -1;
    for (int t = first; t < n; t++)
        if (cuda_model_forward(m, 0, tokens + t, 1, false, logits + (size_t)t * V, NULL, 0.0f, NULL,
                               err, err_len) != 0)
            return -1;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * A decode step of many sequences: padded to a bucket, replayed from that bucket's graph.
 */

/* The smallest bucket (a power of two, or max_seqs) that holds n sequences, and its index. */
static int decode_bucket(const cuda_model *m, int n, int *index) {
    int size = 1, i = 0;
    while (size < n) size *= 2, i++;
    *index = i;
    return size < m->max_seqs ? size : m->max_seqs;
}

/* Everything a decode step of step->n_seqs rows puts on the stream once its inputs are staged. */
static void enqueue_decode_step(cuda_model *m, const step_shape *step, const sampler *smp) {
    upload_step_inputs(m);
    layers_forward(m, step);
    head_forward(m, step, 0, step->n_rows);
    sample_forward(m, 0, step->n_rows, smp);
}

static bool same_sampling(const cuda_model *m, const sampler *smp) {
    const sampler_params *a = &m->graph_sampling, *b = &smp->params;
    return a->temperature == b->temperature && a->top_k == b->top_k && a->top_p == b->top_p &&
           m->graph_vocab == smp->vocab_size;
}

/*
 * A decode step for its ids only, as a graph: captured the first time a bucket runs (every
 * bucket again when the sampling settings change), then replayed.
 */
static void replay_decode_graph(cuda_model *m, const step_shape *step, const sampler *smp) {
    if (!same_sampling(m, smp)) drop_decode_graphs(m);
    m->graph_sampling = smp->params;
    m->graph_vocab = smp->vocab_size;
    int index = 0;
    decode_bucket(m, step->n_seqs, &index);
    if (!m->decode_graphs[index]) {
        cudaGraph_t graph;
        CUDA_CHECK(cudaStreamBeginCapture(m->stream, cudaStreamCaptureModeThreadLocal));
        enqueue_decode_step(m, step, smp);
        CUDA_CHECK(cudaStreamEndCapture(m->stream, &graph));
        CUDA_CHECK(cudaGraphInstantiate(&m->decode_graphs[index], graph, 0));
        CUDA_CHECK(cudaGraphDestroy(graph));
    }
    CUDA_CHECK(cudaGraphLaunch(m->decode_graphs[index], m->stream));
}

static int check_decode_args(cuda_model *m, int n_seqs, const int *seqs, const int32_t *tokens,
                             char *err, size_t err_len) {
    if (n_seqs < 1 || n_seqs > m->max_seqs)
        return snprintf(err, err_len, "cuda backend: a decode batch of %d sequences, expected 1..%d",
                        n_seqs, m->max_seqs), -1;
    if (check_ids(m, tokens, n_seqs, err, err_len) != 0) return -1;
    for (int i = 0; i < n_seqs; i++) {
        sequence(m, seqs[i]);
        for (int j = 0; j < i; j++)
            if (seqs[j] == seqs[i])
                return snprintf(err, err_len, "cuda backend: sequence %d twice in one decode batch",
                                seqs[i]), -1;
        if (reserve_or_fail(m, seqs[i], 1, err, err_len) != 0) return -1;
    }
    return 0;
}

int cuda_model_decode(cuda_model *model, int n_seqs, const int *seqs, const int32_t *tokens,
                      const sampler *smp, const float *uniforms, int32_t *next_ids,
                      bool *nonfinite, char *err, size_t err_len) {
    if (check_decode_args(model, n_seqs, seqs, tokens, err, err_len) != 0) return -1;
    int index = 0;
    const int rows = model->eager_decode ? n_seqs : decode_bucket(model, n_seqs, &index);
    const step_shape step = {.n_rows = rows, .n_seqs = rows, .decode = true};
    nvtxRangePushA("decode");
    use_step_layout(model, rows, rows);
    model->host.query_starts[0] = 0;
    for (int i = 0; i < n_seqs; i++) {
        const int pos = model->kv.cached[seqs[i]];
        stage_token(model, i, rows, seqs[i], tokens[i], pos);
        stage_tables(model, i, rows, seqs[i], 1);
        model->host.query_starts[i + 1] = i + 1;
        model->host.uniforms[i] = uniforms[i];
        model->host.h2o_targets[i] = h2o_target(model, true);
    }
    for (int i = n_seqs; i < rows; i++) stage_padding(model, i, rows);
    if (model->eager_decode) enqueue_decode_step(model, &step, smp);
    else replay_decode_graph(model, &step, smp);
    CUDA_CHECK(cudaStreamSynchronize(model->stream));
    nvtxRangePop();
    for (int i = 0; i < n_seqs; i++) {
        model->kv.cached[seqs[i]]++;
        evict(model, seqs[i], i, rows, 1);
        next_ids[i] = model->host.next_ids[i];
        nonfinite[i] = model->host.nonfinite[i] != 0;
    }
    return 0;
}
