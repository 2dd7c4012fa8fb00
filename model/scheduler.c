#include "model/scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The scheduler's queues: request indices, and the model's free sequence slots. */
typedef struct {
    cuda_model *model;
    batch_request *requests;
    const sampler *smp;
    bool stop_at_eot;
    int32_t eot_id;
    batch_stats *stats;
    int *waiting;   /* [n_requests] a deque: the head is waiting[waiting_head] */
    int waiting_head, waiting_len;
    int *running;   /* [max_seqs] in admission order, the most recent last */
    int n_running;
    int *free_slots; /* [max_seqs] a stack */
    int n_free_slots;
    int32_t *batch_tokens, *batch_ids; /* [max_seqs] one decode step's inputs and outputs */
    int *batch_slots;
    float *batch_uniforms;
    bool *batch_nonfinite;
    int restart_keep;         /* tokens a restart past the context keeps; 0: no restarts */
    int32_t *restart_context; /* [n_positions + 1] the context of a sequence restarting */
    int32_t *kept_storage;    /* [n_requests, restart_keep] each request's kept tokens */
} scheduler;

/* Tokens r's cache holds once admitted and caught up: its base and the drawn tokens after it. */
static int context_len(const batch_request *r) {
    return r->base_len + r->n_generated - r->base_generated;
}

/* The most tokens r ever holds in the cache: all but the last it draws, at most the context. */
static int peak_tokens(const batch_request *r, int n_positions) {
    const int64_t peak = (int64_t)r->prompt_len + (r->max_new > 0 ? r->max_new - 1 : 0);
    return peak < n_positions ? (int)peak : n_positions;
}

/* The tokens a restart past the context keeps under the model's policy; 0 when it cannot. */
static int restart_keep_of(const cuda_model *m) {
    const int keep = kv_policy_restart_keeps(&m->policy);
    return keep < m->config.n_positions ? keep : 0;
}

static int check_requests(const cuda_model *m, const batch_request *requests, int n, char *err,
                          size_t err_len) {
    const int capacity = cuda_model_kv_capacity(m), N = m->config.n_positions;
    const bool restarts = restart_keep_of(m) > 0;
    for (int i = 0; i < n; i++) {
        const batch_request *r = &requests[i];
        if (restarts && r->prompt_len > N)
            return snprintf(err, err_len, "prompt %d: %d tokens exceed the model's context of %d "
                            "tokens", i, r->prompt_len, N), -1;
        if (!restarts && (int64_t)r->prompt_len + r->max_new > N)
            return snprintf(err, err_len, "prompt %d: %d tokens + %d to generate exceed the model's "
                            "context of %d tokens (the window and sinks KV policies run past it)",
                            i, r->prompt_len, r->max_new, N), -1;
        const int peak = peak_tokens(r, N);
        if (r->max_new > 0 && peak > capacity)
            return snprintf(err, err_len, "prompt %d needs %d tokens of KV cache, and the whole pool "
                            "holds %d of one sequence: give --kv-mem more bytes", i, peak,
                            capacity), -1;
    }
    return 0;
}

/* Frees r's sequence slot and its blocks. */
static void leave_model(scheduler *s, batch_request *r) {
    cuda_model_release(s->model, r->slot);
    s->free_slots[s->n_free_slots++] = r->slot;
    r->slot = -1;
}

static void remove_running(scheduler *s, int index) {
    memmove(s->running + index, s->running + index + 1,
            (size_t)(s->n_running - index - 1) * sizeof *s->running);
    s->n_running--;
}

/* Whether r's next decode row draws a token, or feeds one drawn before a preemption. */
static bool drawing(const batch_request *r) { return r->n_fed == r->n_generated - 1; }

/* Takes a drawn token; the request ends at its budget or at <|endoftext|>. */
static void take_token(scheduler *s, batch_request *r, int32_t id) {
    if (s->stop_at_eot && id == s->eot_id) r->drew_eot = true;
    else r->generated[r->n_generated++] = id;
    if (r->drew_eot || r->n_generated == r->max_new) r->state = REQUEST_DONE;
}

static void fail(batch_request *r, const char *why) {
    r->state = REQUEST_FAILED;
    snprintf(r->error, sizeof r->error, "%s", why);
}

/*
 * Admission keeps some blocks free for the running sequences' growth (one new block each in
 * every layer), so that a prefill is not undone by a preemption in the very next step.
 */
static bool fits(const scheduler *s, int slot, int n_tokens) {
    const int needed = cuda_model_blocks_needed(s->model, slot, n_tokens);
    const int headroom = s->n_running > 0 ? s->n_running * s->model->config.n_layer : 0;
    return needed + headroom <= cuda_model_free_blocks(s->model);
}

/*
 * Prefills r's base (its prompt, or the tokens of its last restart) into its slot. When every
 * drawn token is inside the base (a fresh request, a restart) it draws the next token from it;
 * a preempted request has drawn its tokens already, and feeds those after the base again
 * through the decode steps that follow (its catch-up), so that its cache is rebuilt bit for bit.
 */
static void prefill_base(scheduler *s, batch_request *r) {
    r->n_fed = r->base_generated;
    const bool draws = r->n_fed == r->n_generated;
    const float uniform = draws ? sampler_stream_uniform(&s->smp->params, &r->rng_state) : 0.0f;
    char err[GPT2_ERR_LEN];
    int32_t id = -1;
    const int rc = cuda_model_forward(s->model, r->slot, r->base, r->base_len, false, NULL, s->smp,
                                      uniform, draws ? &id : NULL, err, sizeof err);
    s->stats->prefills++;
    if (rc != 0) fail(r, err);
    else if (draws) take_token(s, r, id);
}

/* Admits the request at the head of the queue: a slot, and its base prefilled. */
static void admit(scheduler *s, int index) {
    batch_request *r = &s->requests[index];
    r->slot = s->free_slots[--s->n_free_slots];
    s->waiting_head++, s->waiting_len--;
    prefill_base(s, r);
    if (r->state != REQUEST_WAITING) {
        leave_model(s, r);
        return;
    }
    r->state = REQUEST_RUNNING;
    s->running[s->n_running++] = index;
}

/* Admits waiting requests, in order, while a slot and their blocks are free. */
static void admit_waiting(scheduler *s) {
    while (s->waiting_len > 0 && s->n_free_slots > 0) {
        const int index = s->waiting[s->waiting_head];
        batch_request *r = &s->requests[index];
        if (!fits(s, s->free_slots[s->n_free_slots - 1], context_len(r))) return;
        admit(s, index);
    }
}

/* Sends the most recently admitted running request back to the head of the queue. */
static void preempt_latest(scheduler *s) {
    const int index = s->running[s->n_running - 1];
    batch_request *r = &s->requests[index];
    leave_model(s, r);
    r->state = REQUEST_WAITING;
    s->n_running--;
    s->waiting[--s->waiting_head] = index;
    s->waiting_len++;
    s->stats->preemptions++;
}

/*
 * Past the context: every running sequence whose cache is full restarts from the tokens its
 * policy keeps of its context (the base, the drawn tokens fed since, and the one it feeds next),
 * prefilled afresh in its slot, which draws its next token. It frees more blocks than it takes.
 */
static void restart_full_contexts(scheduler *s) {
    const int N = s->model->config.n_positions;
    for (int i = s->n_running - 1; s->restart_keep && i >= 0; i--) {
        batch_request *r = &s->requests[s->running[i]];
        if (cuda_model_cached(s->model, r->slot) < N) continue;
        const int after = r->n_fed + 1 - r->base_generated; /* drawn tokens past the base, the next included */
        memcpy(s->restart_context, r->base, (size_t)r->base_len * sizeof(int32_t));
        memcpy(s->restart_context + r->base_len, r->generated + r->base_generated,
               (size_t)after * sizeof(int32_t));
        r->base_len = kv_policy_restart_context(&s->model->policy, s->restart_context,
                                                r->base_len + after);
        memcpy(r->kept, s->restart_context, (size_t)r->base_len * sizeof(int32_t));
        r->base = r->kept;
        r->base_generated = r->n_fed + 1;
        cuda_model_release(s->model, r->slot);
        prefill_base(s, r);
        s->stats->restarts++;
        if (r->state == REQUEST_RUNNING) continue;
        leave_model(s, r);
        remove_running(s, i);
    }
}

/* A block for every running sequence's next token, oldest first, preempting the latest. */
static void reserve_next_tokens(scheduler *s) {
    for (int i = 0; i < s->n_running; i++) {
        const int slot = s->requests[s->running[i]].slot;
        while (cuda_model_reserve(s->model, slot, 1) == KV_POOL_FULL) {
            const bool self = i == s->n_running - 1;
            preempt_latest(s);
            if (self) return;
        }
    }
}

/* One decode step of every running sequence; finished and failed ones leave. */
static int decode_running(scheduler *s, char *err, size_t err_len) {
    const int n = s->n_running;
    for (int i = 0; i < n; i++) { /* a row draws once its last drawn token is the one it feeds */
        batch_request *r = &s->requests[s->running[i]];
        s->batch_slots[i] = r->slot;
        s->batch_tokens[i] = r->generated[r->n_fed];
        s->batch_uniforms[i] = drawing(r) ? sampler_stream_uniform(&s->smp->params, &r->rng_state)
                                          : 0.0f;
    }
    if (cuda_model_decode(s->model, n, s->batch_slots, s->batch_tokens, s->smp, s->batch_uniforms,
                          s->batch_ids, s->batch_nonfinite, err, err_len) != 0)
        return -1;
    s->stats->decode_steps++;
    s->stats->decoded_tokens += n;
    if (n > s->stats->largest_batch) s->stats->largest_batch = n;
    for (int i = n - 1; i >= 0; i--) {
        batch_request *r = &s->requests[s->running[i]];
        const bool drew = drawing(r);
        r->n_fed++;
        if (!drew) continue; /* a catch-up row: its id was drawn before the preemption */
        if (s->batch_nonfinite[i]) fail(r, "the logits at the sampled position are not finite (NaN or inf)");
        else take_token(s, r, s->batch_ids[i]);
        if (r->state == REQUEST_RUNNING) continue;
        leave_model(s, r);
        remove_running(s, i);
    }
    return 0;
}

static int schedule(scheduler *s, char *err, size_t err_len) {
    while (s->waiting_len > 0 || s->n_running > 0) {
        admit_waiting(s);
        if (s->n_running == 0 && s->waiting_len > 0) /* check_requests rules this out */
            return snprintf(err, err_len, "scheduler: an empty pool cannot admit request %d",
                            s->waiting[s->waiting_head]), -1;
        restart_full_contexts(s);
        reserve_next_tokens(s);
        if (s->n_running > 0 && decode_running(s, err, err_len) != 0) return -1;
    }
    return 0;
}

static void free_scheduler(scheduler *s) {
    free(s->waiting), free(s->running), free(s->free_slots), free(s->batch_tokens);
    free(s->batch_ids), free(s->batch_slots), free(s->batch_uniforms), free(s->batch_nonfinite);
    free(s->restart_context), free(s->kept_storage);
}

int batch_run(cuda_model *model, batch_request *requests, int n_requests, const sampler *smp,
              bool stop_at_eot, int32_t eot_id, batch_stats *stats, char *err, size_t err_len) {
    *stats = (batch_stats){0};
    if (check_requests(model, requests, n_requests, err, err_len) != 0) return -1;
    const size_t n_seqs = (size_t)model->max_seqs, n_req = n_requests > 0 ? (size_t)n_requests : 1;
    scheduler s = {.model = model, .requests = requests, .smp = smp, .stop_at_eot = stop_at_eot,
                   .eot_id = eot_id, .stats = stats,
                   .waiting = malloc(n_req * sizeof(int)), .running = malloc(n_seqs * sizeof(int)),
                   .free_slots = malloc(n_seqs * sizeof(int)),
                   .batch_tokens = malloc(n_seqs * sizeof(int32_t)),
                   .batch_ids = malloc(n_seqs * sizeof(int32_t)),
                   .batch_slots = malloc(n_seqs * sizeof(int)),
                   .batch_uniforms = malloc(n_seqs * sizeof(float)),
                   .batch_nonfinite = malloc(n_seqs * sizeof(bool)),
                   .restart_keep = restart_keep_of(model)};
    s.restart_context = malloc(((size_t)model->config.n_positions + 1) * sizeof(int32_t));
    s.kept_storage = malloc(n_req * (size_t)(s.restart_keep ? s.restart_keep : 1) * sizeof(int32_t));
    if (!s.waiting || !s.running || !s.free_slots || !s.batch_tokens || !s.batch_ids ||
        !s.batch_slots || !s.batch_uniforms || !s.batch_nonfinite || !s.restart_context ||
        !s.kept_storage) {
        free_scheduler(&s);
        return snprintf(err, err_len, "scheduler: out of host memory"), -1;
    }
    for (int i = (int)n_seqs - 1; i >= 0; i--) s.free_slots[s.n_free_slots++] = i; /* slot 0 first */
    for (int i = 0; i < n_requests; i++) {
        batch_request *r = &requests[i];
        *r = (batch_request){.prompt = r->prompt, .prompt_len = r->prompt_len, .max_new = r->max_new,
                             .seed = r->seed, .generated = r->generated, .rng_state = r->seed,
                             .slot = -1, .state = r->max_new > 0 ? REQUEST_WAITING : REQUEST_DONE,
                             .base = r->prompt, .base_len = r->prompt_len,
                             .kept = s.kept_storage + (size_t)i * (size_t)s.restart_keep};
        if (r->state == REQUEST_WAITING) s.waiting[s.waiting_len++] = i;
    }
    const int rc = schedule(&s, err, err_len);
    for (int i = 0; i < s.n_running; i++) leave_model(&s, &requests[s.running[i]]);
    free_scheduler(&s);
    return rc;
}
