#include "model/cuda_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nvtx3/nvToolsExt.h>

#include "kernels/cuda_check.h"

#define ALIGN_BYTES 16 /* every device tensor starts on a 16-byte boundary (128-bit loads) */

static size_t align_up(size_t n) { return (n + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES; }

static size_t dtype_bytes(gpt2_dtype dtype) { return dtype == GPT2_F32 ? 4 : 2; }

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

static int upload_weights(cuda_weights *w, const gpt2_checkpoint *ckpt, cudaStream_t stream,
                          char *err, size_t err_len) {
    size_t largest = 0;
    w->bytes = weight_bytes(ckpt, &largest);
    w->layers = calloc((size_t)ckpt->config.n_layer, sizeof *w->layers);
    if (!w->layers) return snprintf(err, err_len, "cuda backend: out of host memory"), -1;
    size_t free_bytes = 0, total_bytes = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    if (cudaMalloc(&w->storage, w->bytes) != cudaSuccess) {
        cudaGetLastError();
        snprintf(err, err_len, "cuda backend: out of GPU memory for the weights: %zu bytes needed, "
                 "%zu free", w->bytes, free_bytes);
        return -1;
    }
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

static void alloc_activations(cuda_activations *a, const gpt2_config *c, int max_tokens) {
    const size_t T = (size_t)max_tokens, C = (size_t)c->n_embd, V = (size_t)c->vocab_size;
    a->max_tokens = max_tokens;
    a->attention_workspace_bytes = attention_decode_workspace_bytes(1, c->n_head, c->n_positions);
    const size_t sizes[] = {T * C * 2, T * C * 2, T * 3 * C * 2, T * C * 2, T * 4 * C * 2,
                            T * V * 4, a->attention_workspace_bytes};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) total += align_up(sizes[i]);
    CUDA_CHECK(cudaMalloc(&a->storage, total));
    char *next = a->storage;
    void **slots[] = {(void **)&a->residual, (void **)&a->normed, (void **)&a->qkv,
                      (void **)&a->attn_out, (void **)&a->hidden, (void **)&a->logits,
                      (void **)&a->attention_workspace};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        *slots[i] = next;
        next += align_up(sizes[i]);
    }
}

/* Lays the step inputs out from base (host or device); returns the bytes they take. */
static size_t carve_step_inputs(cuda_step_inputs *s, char *base, int max_tokens, int max_blocks) {
    size_t offset = 0;
#define CARVE(field, count)                                      \
    s->field = base ? (void *)(base + offset) : NULL;            \
    offset += align_up((size_t)(count) * sizeof *s->field)
    CARVE(ids, max_tokens);
    CARVE(positions, max_tokens);
    CARVE(slots, max_tokens);
    CARVE(block_table, max_blocks);
    CARVE(query_starts, 2);
    CARVE(context_lens, 1);
    CARVE(uniform, 1);
    CARVE(result, 1);
#undef CARVE
    return offset;
}

static int create_pool(cuda_kv_pool *kv, const gpt2_config *c, const cuda_model_options *opt,
                       char *err, size_t err_len) {
    kv->shape = (kv_pool_shape){.n_layer = c->n_layer, .n_head = c->n_head,
                                .block_size = opt->block_size ? opt->block_size : KV_DEFAULT_BLOCK_SIZE,
                                .format = KV_FORMAT_FP16};
    size_t free_bytes = 0, total_bytes = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    /* The budget given, or a fraction of the free memory; never more than the sequences can use. */
    const size_t usable = (size_t)CEIL_DIV(c->n_positions, kv->shape.block_size) *
                          kv_pool_bytes_per_block(&kv->shape);
    size_t budget = opt->kv_mem_bytes ? opt->kv_mem_bytes
                                      : (size_t)(KV_DEFAULT_FREE_FRACTION * (double)free_bytes);
    if (budget > usable) budget = usable;
    kv->shape.num_blocks = kv_pool_blocks_for_budget(&kv->shape, budget);
    if (kv->shape.num_blocks < 1) {
        snprintf(err, err_len, "cuda backend: a KV budget of %zu bytes holds no block of %zu bytes",
                 budget, kv_pool_bytes_per_block(&kv->shape));
        return -1;
    }
    kv->layer_elems = (size_t)kv->shape.num_blocks * c->n_head * kv->shape.block_size * KV_HEAD_SIZE;
    const size_t bytes = 2 * (size_t)c->n_layer * kv->layer_elems * sizeof(gpt2_f16);
    if (cudaMalloc((void **)&kv->k_pages, bytes) != cudaSuccess) {
        cudaGetLastError();
        snprintf(err, err_len, "cuda backend: out of GPU memory for the KV pool: %zu bytes needed, "
                 "%zu free", bytes, free_bytes);
        return -1;
    }
    kv->v_pages = kv->k_pages + (size_t)c->n_layer * kv->layer_elems;
    if (kv_block_allocator_create(&kv->allocator, &kv->shape) != 0 ||
        kv_sequence_create(&kv->sequence, c->n_positions, kv->shape.block_size) != 0) {
        snprintf(err, err_len, "cuda backend: out of host memory for the KV bookkeeping");
        return -1;
    }
    return 0;
}

static int create_model(cuda_model *model, const gpt2_checkpoint *ckpt,
                        const cuda_model_options *options, char *err, size_t err_len) {
    const gpt2_config *c = &ckpt->config;
    *model = (cuda_model){.config = *c};
    if (c->n_embd % 8 != 0) {
        snprintf(err, err_len, "cuda backend: n_embd %d is not a multiple of 8", c->n_embd);
        return -1;
    }
    const int max_tokens = options->max_tokens >= 1 && options->max_tokens <= c->n_positions
                               ? options->max_tokens : c->n_positions;
    model->eager_decode = options->eager_decode;
    CUDA_CHECK(cudaStreamCreateWithFlags(&model->stream, cudaStreamNonBlocking));
    model->gemm = gemm_context_create();
    if (!model->gemm || upload_weights(&model->weights, ckpt, model->stream, err, err_len) != 0 ||
        create_pool(&model->kv, c, options, err, err_len) != 0) {
        if (!model->gemm) snprintf(err, err_len, "cuda backend: out of host memory");
        cuda_model_destroy(model);
        return -1;
    }
    alloc_activations(&model->act, c, max_tokens);
    const int max_blocks = model->kv.sequence.capacity;
    model->step_bytes = carve_step_inputs(&model->host, NULL, max_tokens, max_blocks);
    char *host_base, *device_base;
    CUDA_CHECK(cudaMallocHost((void **)&host_base, model->step_bytes));
    CUDA_CHECK(cudaMalloc((void **)&device_base, model->step_bytes));
    carve_step_inputs(&model->host, host_base, max_tokens, max_blocks);
    carve_step_inputs(&model->device, device_base, max_tokens, max_blocks);
    return 0;
}

int cuda_model_create(cuda_model *model, const gpt2_checkpoint *ckpt,
                      const cuda_model_options *options, char *err, size_t err_len) {
    nvtxRangePushA("load");
    const int rc = create_model(model, ckpt, options, err, err_len);
    nvtxRangePop();
    return rc;
}

void cuda_model_destroy(cuda_model *model) {
    if (model->decode_graph) CUDA_CHECK(cudaGraphExecDestroy(model->decode_graph));
    CUDA_CHECK(cudaFree(model->weights.storage));
    CUDA_CHECK(cudaFree(model->act.storage));
    CUDA_CHECK(cudaFree(model->kv.k_pages));
    CUDA_CHECK(cudaFreeHost(model->host.ids));
    CUDA_CHECK(cudaFree(model->device.ids));
    kv_sequence_destroy(&model->kv.sequence);
    kv_block_allocator_destroy(&model->kv.allocator);
    gemm_context_destroy(model->gemm);
    if (model->stream) CUDA_CHECK(cudaStreamDestroy(model->stream));
    free(model->weights.layers);
    *model = (cuda_model){0};
}

void cuda_model_reset(cuda_model *model) {
    kv_sequence_release(&model->kv.allocator, &model->kv.sequence);
}

int cuda_model_kv_capacity(const cuda_model *model) {
    const int64_t tokens = (int64_t)model->kv.shape.num_blocks * model->kv.shape.block_size;
    return tokens < model->config.n_positions ? (int)tokens : model->config.n_positions;
}

/* ---------------------------------------------------------------------------------------------
 * The forward pass, in order.
 */

/* This layer's pages and the sequence's block table, as the attention kernels read them. */
static paged_kv_layer layer_view(const cuda_model *m, int layer) {
    return (paged_kv_layer){.k = m->kv.k_pages + (size_t)layer * m->kv.layer_elems,
                            .v = m->kv.v_pages + (size_t)layer * m->kv.layer_elems,
                            .block_tables = m->device.block_table,
                            .max_blocks_per_seq = m->kv.sequence.capacity,
                            .block_size = m->kv.shape.block_size,
                            .n_head = m->config.n_head};
}

/* One transformer block on n rows of the residual stream (ln_1 already applied into normed). */
static void block_forward(cuda_model *m, int layer, int n) {
    const gpt2_config *c = &m->config;
    const cuda_layer_weights *w = &m->weights.layers[layer];
    cuda_activations *a = &m->act;
    const int C = c->n_embd;
    const paged_kv_layer kv = layer_view(m, layer);
    cudaStream_t s = m->stream;

    nvtxRangePushA("qkv");
    launch_linear(m->gemm, a->qkv, 3 * C, a->normed, C, w->attn_w, w->attn_b, NULL, 0, n, C,
                  3 * C, LINEAR_PLAIN, s);
    nvtxRangePop();
    nvtxRangePushA("kv_write");
    launch_kv_write_fp16((gpt2_f16 *)kv.k, (gpt2_f16 *)kv.v, a->qkv, 3 * C, m->device.slots, n,
                         c->n_head, kv.block_size, m->kv.shape.num_blocks, s);
    nvtxRangePop();
    nvtxRangePushA("attention");
    if (n == 1) /* the grid covers the whole context, so that one graph serves every step */
        launch_attention_decode(a->attn_out, a->attention_workspace, a->attention_workspace_bytes,
                                a->qkv, 3 * C, kv, m->device.context_lens, 1, c->n_positions, s);
    else
        launch_attention_prefill(a->attn_out, C, a->qkv, 3 * C, kv, m->device.query_starts,
                                 m->device.context_lens, 1, n, s);
    nvtxRangePop();
    nvtxRangePushA("attn_proj");
    launch_linear(m->gemm, a->residual, C, a->attn_out, C, w->attn_proj_w, w->attn_proj_b,
                  a->residual, C, n, C, C, LINEAR_RESIDUAL, s);
    nvtxRangePop();
    nvtxRangePushA("ln_2");
    launch_layernorm(a->normed, a->residual, w->ln_2_w, w->ln_2_b, n, C, c->layer_norm_eps, s);
    nvtxRangePop();
    nvtxRangePushA("mlp_fc");
    launch_linear(m->gemm, a->hidden, 4 * C, a->normed, C, w->fc_w, w->fc_b, NULL, 0, n, C,
                  4 * C, LINEAR_GELU, s);
    nvtxRangePop();
    nvtxRangePushA("mlp_proj");
    launch_linear(m->gemm, a->residual, C, a->hidden, 4 * C, w->mlp_proj_w, w->mlp_proj_b,
                  a->residual, C, n, 4 * C, C, LINEAR_RESIDUAL, s);
    nvtxRangePop();
}

static int check_forward_args(const cuda_model *m, const int32_t *tokens, int n, char *err,
                              size_t err_len) {
    const gpt2_config *c = &m->config;
    if (n < 1 || n > m->act.max_tokens)
        return snprintf(err, err_len, "cuda backend: %d tokens in one call, expected 1..%d", n,
                        m->act.max_tokens), -1;
    if (m->kv.sequence.n_tokens + n > c->n_positions)
        return snprintf(err, err_len, "cuda backend: %d cached + %d new tokens exceed n_positions = %d",
                        m->kv.sequence.n_tokens, n, c->n_positions), -1;
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size)
            return snprintf(err, err_len, "cuda backend: token id %d out of range [0, %d)", tokens[t],
                            c->vocab_size), -1;
    return 0;
}

/* Fills the host side of the staging buffer for n new tokens after pos0. */
static void stage_step_inputs(cuda_model *m, const int32_t *tokens, int n, int pos0, float uniform) {
    cuda_step_inputs *h = &m->host;
    for (int t = 0; t < n; t++) {
        h->ids[t] = tokens[t];
        h->positions[t] = pos0 + t;
        h->slots[t] = kv_sequence_slot(&m->kv.sequence, pos0 + t);
    }
    memcpy(h->block_table, m->kv.sequence.block_ids, (size_t)m->kv.sequence.n_blocks * sizeof(int32_t));
    h->query_starts[0] = 0;
    h->query_starts[1] = n;
    h->context_lens[0] = pos0 + n;
    h->uniform[0] = uniform;
}

/* ln_f and the LM head over the last `rows` of the n new rows: logits [rows, V] on the device. */
static void head_forward(cuda_model *m, int n, int rows) {
    const gpt2_config *c = &m->config;
    cuda_activations *a = &m->act;
    const int C = c->n_embd, V = c->vocab_size;
    nvtxRangePushA("lm_head");
    launch_layernorm(a->normed, a->residual + (size_t)(n - rows) * C, m->weights.ln_f_w,
                     m->weights.ln_f_b, rows, C, c->layer_norm_eps, m->stream);
    launch_linear_f32_out(m->gemm, a->logits, V, a->normed, C, m->weights.lm_head, rows, C, V,
                          m->stream);
    nvtxRangePop();
}

/*
 * The id the staged uniform draws from the last row of logits (overwritten: it is the scratch),
 * and whether that row held a NaN or an infinity, checked first; both come back in one copy.
 */
static void sample_forward(cuda_model *m, int rows, const sampler *smp) {
    float *last = m->act.logits + (size_t)(rows - 1) * m->config.vocab_size;
    cuda_step_result *result = m->device.result;
    nvtxRangePushA("sample");
    launch_find_nonfinite(&result->nonfinite, last, 1, smp->vocab_size, m->stream);
    launch_sample(&result->next_id, last, m->device.uniform, last, 1, smp->vocab_size,
                  smp->params.temperature, smp->params.top_k, smp->params.top_p, m->stream);
    nvtxRangePop();
    CUDA_CHECK(cudaMemcpyAsync(m->host.result, result, sizeof *result, cudaMemcpyDeviceToHost,
                               m->stream));
}

/* Everything one step puts on the stream after its inputs are staged on the host. */
static void enqueue_step(cuda_model *m, int n, bool all_positions, float *logits, const sampler *smp,
                         bool sample) {
    const gpt2_config *c = &m->config;
    cuda_activations *a = &m->act;
    CUDA_CHECK(cudaMemcpyAsync(m->device.ids, m->host.ids, m->step_bytes, cudaMemcpyHostToDevice,
                               m->stream));
    nvtxRangePushA("embedding");
    launch_embedding(a->residual, m->device.ids, m->device.positions, m->weights.wte,
                     m->weights.wpe, n, c->n_embd, c->vocab_size, c->n_positions, m->stream);
    nvtxRangePop();
    for (int l = 0; l < c->n_layer; l++) {
        char layer_name[24];
        snprintf(layer_name, sizeof layer_name, "layer %d", l);
        nvtxRangePushA(layer_name);
        nvtxRangePushA("ln_1");
        launch_layernorm(a->normed, a->residual, m->weights.layers[l].ln_1_w,
                         m->weights.layers[l].ln_1_b, n, c->n_embd, c->layer_norm_eps, m->stream);
        nvtxRangePop();
        block_forward(m, l, n);
        nvtxRangePop();
    }
    const int rows = all_positions ? n : 1;
    head_forward(m, n, rows);
    if (logits)
        CUDA_CHECK(cudaMemcpyAsync(logits, a->logits, (size_t)rows * c->vocab_size * sizeof(float),
                                   cudaMemcpyDeviceToHost, m->stream));
    if (sample) sample_forward(m, rows, smp);
}

static bool same_sampling(const sampler_params *a, const sampler_params *b) {
    return a->temperature == b->temperature && a->top_k == b->top_k && a->top_p == b->top_p;
}

/* A decode step for its id only, as a graph: captured the first time (or when the sampling
 * settings change), then replayed. */
static void replay_decode_graph(cuda_model *m, const sampler *smp) {
    if (m->decode_graph && !same_sampling(&m->graph_sampling, &smp->params)) {
        CUDA_CHECK(cudaGraphExecDestroy(m->decode_graph));
        m->decode_graph = NULL;
    }
    if (!m->decode_graph) {
        cudaGraph_t graph;
        CUDA_CHECK(cudaStreamBeginCapture(m->stream, cudaStreamCaptureModeThreadLocal));
        enqueue_step(m, 1, false, NULL, smp, true);
        CUDA_CHECK(cudaStreamEndCapture(m->stream, &graph));
        CUDA_CHECK(cudaGraphInstantiate(&m->decode_graph, graph, 0));
        CUDA_CHECK(cudaGraphDestroy(graph));
        m->graph_sampling = smp->params;
    }
    CUDA_CHECK(cudaGraphLaunch(m->decode_graph, m->stream));
}

int cuda_model_forward(cuda_model *model, const int32_t *tokens, int n, bool all_positions,
                       float *logits, const sampler *smp, float uniform, int32_t *next_id,
                       char *err, size_t err_len) {
    if (check_forward_args(model, tokens, n, err, err_len) != 0) return -1;
    const int pos0 = model->kv.sequence.n_tokens;
    if (kv_sequence_reserve(&model->kv.allocator, &model->kv.sequence, n) != KV_RESERVED)
        return snprintf(err, err_len, "cuda backend: the KV pool (%d blocks of %d tokens) cannot "
                        "hold %d tokens; give --kv-mem more bytes", model->kv.shape.num_blocks,
                        model->kv.shape.block_size, pos0 + n), -1;
    nvtxRangePushA(n == 1 ? "decode" : "prefill");
    stage_step_inputs(model, tokens, n, pos0, uniform);
    if (n == 1 && next_id && !logits && !model->eager_decode)
        replay_decode_graph(model, smp);
    else
        enqueue_step(model, n, all_positions, logits, smp, next_id != NULL);
    CUDA_CHECK(cudaStreamSynchronize(model->stream));
    nvtxRangePop();
    if (!next_id) return 0;
    if (model->host.result->nonfinite)
        return snprintf(err, err_len, "cuda backend: the logits at the sampled position are not "
                        "finite (NaN or inf)"), -1;
    *next_id = model->host.result->next_id;
    return 0;
}

int cuda_model_forward_sequence(void *model, const int32_t *tokens, int n, float *logits,
                                char *err, size_t err_len) {
    cuda_model_reset(model);
    return cuda_model_forward(model, tokens, n, true, logits, NULL, 0.0f, NULL, err, err_len);
}
