/* gpt2 generate: stream text from a prompt, with llama.cpp-style timings on stderr. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model/sampler.h"
#include "model/scheduler.h"
#include "tools/cli.h"
#include "tools/cli_model.h"
#include "tools/commands.h"
#include "tools/prompts.h"
#include "tools/result.h"

typedef struct {
    const char *model_flag;
    const char *prompt;
    const char *prompt_file;
    const char *prompts_file; /* --prompts: one prompt per line, run as one batch */
    int max_seqs;           /* cuda: sequences at once; 0 = the engine's default */
    int n_new;
    sampler_params sampling;
    bool seed_given;
    bool ignore_eos;
    bool allow_special;
    bool json;
    cli_backend backend;
    kv_format kv;
    bool kv_given;
    bool no_kv_cache;       /* recompute the whole context at every token */
    bool no_graph;          /* cuda: decode steps launched eagerly */
    cli_cuda_flags cuda;    /* cuda: --unfused, --device */
    cli_kv_policy_flags policy; /* --kv-policy, --kv-budget */
    size_t kv_mem_bytes;    /* cuda: the KV pool's budget; 0 = the default */
} generate_options;

static void print_help(void) {
    puts("usage: gpt2 generate [-m DIR] [-p TEXT | -f FILE] [options]   (no -p/-f: prompt from stdin)\n"
         "  -m DIR             HF GPT-2 checkpoint folder (default: $GPT2_MODEL, else the first\n"
         "                     of weights/default and weights/gpt2 that exists)\n"
         "  -p TEXT            prompt text\n"
         "  -f FILE            read the prompt from FILE\n"
         "  --prompts FILE     cuda: one prompt per line (an empty line is a prompt too), run as one\n"
         "                     continuously batched set; completions print in input order. Prompt i\n"
         "                     samples with seed --seed + i, so it gives the text it gives alone\n"
         "                     with that seed. A pool too small for all waits, preempts and\n"
         "                     recomputes; one that can never hold a prompt + -n is an error\n"
         "  --max-seqs N       --prompts: at most N sequences at once (default 256)\n"
         "  -n N               tokens to generate (default 64)\n"
         "  --greedy           always take the most likely token (same as --temperature 0)\n"
         "  --temperature T    softmax temperature (default 0.8; 0 = greedy)\n"
         "  --top-k K          keep the K most likely tokens (default 40; 0 = off)\n"
         "  --top-p P          keep the smallest set with probability mass P (default 0.95; 1 = off)\n"
         "  --seed S           random seed (default: from the clock; printed with the stats)\n"
         "  --ignore-eos       keep going past <|endoftext|>\n"
         "  --special          read <|endoftext|> in the prompt as the special token\n"
         CLI_BACKEND_HELP
         CLI_KV_HELP
         CLI_KV_POLICY_HELP
         "                     window and sinks generate past the model's context: each time it\n"
         "                     fills, the kept tokens are prefilled again at positions from 0\n"
         "  --kv-mem BYTES     cuda: the paged KV pool's budget, e.g. 512K or 64M (K, M, G: powers\n"
         "                     of 1024; default: half the free GPU memory); at most what one context\n"
         "                     (--prompts: --max-seqs of them) fills is allocated; too small for the\n"
         "                     prompt + -n is an error.\n"
         "                     Refused on cpu, whose cache always spans the whole context\n"
         "  --no-graph         cuda: launch each decode step's kernels one by one instead of replaying\n"
         "                     a CUDA graph, so that profilers see every layer and op (cpu: no effect)\n"
         "  --no-kv-cache      recompute the whole context at every token, the baseline the cache is\n"
         "                     measured against (both backends)\n"
         "  --json             no streaming: print one JSON object with the text, ids and stats\n"
         "A NaN or an infinity among the logits of a step stops generation with an error naming\n"
         "the step (step 0 is the prompt's); that step's token is never printed.");
}

/* Returns 0 to run, 1 for an error already printed, 2 when help was printed. */
static int parse_options(int argc, char **argv, generate_options *opt) {
    *opt = (generate_options){.n_new = 64,
                              .sampling = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f},
                              .backend = BACKEND_AUTO,
                              .kv = KV_FORMAT_FP32};
    cli_args args = {.cmd = "generate", .argc = argc, .argv = argv, .next = 0};
    unsigned long long seed = 0;
    while (cli_has_next(&args)) {
        if (cli_flag(&args, "-h") || cli_flag(&args, "--help")) {
            print_help();
            return 2;
        } else if (cli_flag(&args, "-m")) opt->model_flag = cli_value(&args);
        else if (cli_flag(&args, "-p")) opt->prompt = cli_value(&args);
        else if (cli_flag(&args, "-f")) opt->prompt_file = cli_value(&args);
        else if (cli_flag(&args, "--prompts")) opt->prompts_file = cli_value(&args);
        else if (cli_flag(&args, "--max-seqs")) cli_int(&args, 1, 1 << 15, &opt->max_seqs);
        else if (cli_flag(&args, "-n")) cli_int(&args, 0, 1 << 30, &opt->n_new);
        else if (cli_flag(&args, "--greedy")) opt->sampling.temperature = 0.0f;
        else if (cli_flag(&args, "--temperature")) cli_float(&args, 0.0, 100.0, &opt->sampling.temperature);
        else if (cli_flag(&args, "--top-k")) cli_int(&args, 0, 1 << 30, &opt->sampling.top_k);
        else if (cli_flag(&args, "--top-p")) cli_float(&args, 1e-6, 1.0, &opt->sampling.top_p);
        else if (cli_flag(&args, "--seed")) opt->seed_given = cli_u64(&args, &seed);
        else if (cli_flag(&args, "--ignore-eos")) opt->ignore_eos = true;
        else if (cli_flag(&args, "--special")) opt->allow_special = true;
        else if (cli_flag(&args, "--backend")) cli_backend_parse(&args, &opt->backend);
        else if (cli_cuda_flag(&args, &opt->cuda)) continue;
        else if (cli_kv_policy_flag(&args, &opt->policy)) continue;
        else if (cli_flag(&args, "--kv")) opt->kv_given = cli_kv_format_parse(&args, &opt->kv);
        else if (cli_flag(&args, "--json")) opt->json = true;
        else if (cli_flag(&args, "--kv-mem")) cli_bytes(&args, &opt->kv_mem_bytes);
        else if (cli_flag(&args, "--no-graph")) opt->no_graph = true;
        else if (cli_flag(&args, "--no-kv-cache")) opt->no_kv_cache = true;
        else return cli_unknown(&args);
    }
    if (args.failed) return 1;
    if (cli_backend_resolve("generate", &opt->backend, opt->kv_given && opt->kv == KV_FORMAT_FP32) != 0)
        return 1;
    if (opt->kv_mem_bytes && opt->backend == BACKEND_CPU)
        return cli_error("generate", "--kv-mem sizes the cuda backend's paged KV pool; the cpu "
                                     "backend's cache always spans the whole context");
    if (opt->prompts_file && (opt->prompt || opt->prompt_file))
        return cli_error("generate", "give the prompts with -p, -f or --prompts, only one of them");
    if (opt->prompts_file && opt->backend == BACKEND_CPU)
        return cli_error("generate", "--prompts batches on the cuda backend (--backend cuda); the "
                                     "cpu backend runs one prompt at a time");
    if (opt->no_kv_cache && opt->policy.policy.kind != KV_POLICY_FULL)
        return cli_error("generate", "--no-kv-cache keeps no cache for a --kv-policy to act on");
    if (opt->prompts_file && opt->no_kv_cache)
        return cli_error("generate", "--prompts needs the KV cache; --no-kv-cache runs one prompt");
    if (opt->max_seqs && !opt->prompts_file)
        return cli_error("generate", "--max-seqs sizes the batch of --prompts");
    opt->sampling.seed = opt->seed_given ? seed : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return 0;
}

/* Everything one generation run produces. */
typedef struct {
    token_ids prompt;
    token_ids generated;
    char *text; /* the generated text, kept for --json */
    size_t text_len;
    int samples;               /* tokens sampled, a final <|endoftext|> included */
    double prefill_seconds;    /* the prompt's forward pass and the first draw */
    double first_token_seconds; /* prefill + first sample: time to first token (samples > 0) */
    double decode_seconds;     /* from the first sample to the last */
    int restarts;              /* times the context filled and its kept tokens were re-prefilled */
    double restart_seconds;    /* the time those re-prefills took (inside decode_seconds) */
} generation;

/* Streams bytes to stdout, or keeps them for --json. Returns 0, or 1 after printing the error. */
static int emit(const generate_options *opt, generation *gen, const char *bytes, size_t n) {
    if (n == 0) return 0;
    if (!opt->json) {
        errno = 0;
        if (fwrite(bytes, 1, n, stdout) == n && fflush(stdout) == 0) return 0;
        return cli_error("generate", "write to stdout failed: %s", strerror(errno ? errno : EIO));
    }
    char *grown = realloc(gen->text, gen->text_len + n + 1);
    if (!grown)
        return cli_error("generate", "out of memory for %zu bytes of text", gen->text_len + n);
    memcpy(grown + gen->text_len, bytes, n);
    gen->text = grown;
    gen->text_len += n;
    return 0;
}

/*
 * The context has outgrown the model's positions: it becomes the tokens the policy keeps, the
 * first S and the last W (the new token among them), which the next call prefills afresh
 * (kv_policy_restart_context): one prefill of S + W tokens every n_positions - (S + W)
 * generated tokens.
 */
static void restart_context(const generate_options *opt, cli_model *model, token_ids *context) {
    context->len = (size_t)kv_policy_restart_context(&opt->policy.policy, context->ids,
                                                      (int)context->len);
    cli_model_reset(model);
}

/*
 * Step i draws generated token i: it appends the token drawn last (i > 0) to the context (the
 * prompt and the tokens drawn so far) and runs the prompt at step 0, then that one token on top
 * of the cache; with --no-kv-cache, the whole context again from a fresh sequence; past the
 * model's context (window policies), the kept tokens again at fresh positions.
 * Returns 0, or 1 after printing the error.
 */
static int draw_step(const generate_options *opt, cli_model *model, token_ids *context, int step,
                     sampler *smp, float *logits, int32_t *id, generation *gen) {
    char err[GPT2_ERR_LEN];
    const size_t generated = gen->generated.len;
    if (step > 0 && token_ids_push(context, *id) != 0)
        return cli_error("generate", "out of memory after %zu tokens", generated);
    const double start = cli_now();
    const bool restart = context->len > (size_t)model->config.n_positions;
    if (restart) restart_context(opt, model, context);
    const int n = (int)context->len, first = opt->no_kv_cache || step == 0 || restart ? 0 : n - 1;
    if (opt->no_kv_cache) cli_model_reset(model);
    if (cli_model_next_id(model, context->ids + first, n - first, smp, logits, id, err, sizeof err) == 0) {
        if (restart) gen->restarts++, gen->restart_seconds += cli_now() - start;
        return 0;
    }
    return cli_error("generate", "step %d: %s; stopped after %zu generated tokens", step, err,
                     generated);
}

/* Copies the prompt into an empty context. Returns 0, or -1 when out of memory. */
static int start_context(token_ids *context, const token_ids *prompt) {
    for (size_t i = 0; i < prompt->len; i++)
        if (token_ids_push(context, prompt->ids[i]) != 0) return -1;
    return 0;
}

/* Prefill, then one token at a time; streams text as each token completes a character. */
static int run_generation(const generate_options *opt, const tokenizer *tok, cli_model *model,
                          generation *gen) {
    const gpt2_config *c = &model->config;
    const int sample_vocab = c->vocab_size < TOKENIZER_VOCAB_SIZE ? c->vocab_size : TOKENIZER_VOCAB_SIZE;
    char piece[1024];
    float *logits = malloc((size_t)c->vocab_size * sizeof(float)); /* the CPU backend's scratch */
    token_ids context = {0};
    sampler smp;
    if (!logits || start_context(&context, &gen->prompt) != 0 ||
        sampler_create(&smp, sample_vocab, opt->sampling) != 0) {
        free(logits);
        token_ids_free(&context);
        return cli_error("generate", "out of memory");
    }
    tokenizer_stream stream = {0};
    double start = cli_now(), first_sample = start, last_sample = start;
    int32_t id = -1; /* each forward call also draws the next id: on the device for cuda */
    int rc = draw_step(opt, model, &context, 0, &smp, logits, &id, gen); /* 1: failed, printed */
    gen->prefill_seconds = cli_now() - start;
    for (int i = 0; rc == 0 && i < opt->n_new; i++) {
        if (i > 0 && (rc = draw_step(opt, model, &context, i, &smp, logits, &id, gen)) != 0)
            break;
        last_sample = cli_now();
        if (gen->samples++ == 0) first_sample = last_sample;
        if (id == TOKENIZER_EOT_ID && !opt->ignore_eos) break;
        if (token_ids_push(&gen->generated, id) != 0) {
            rc = cli_error("generate", "out of memory after %zu tokens", gen->generated.len);
            break;
        }
        int n = tokenizer_stream_push(tok, &stream, id, piece, sizeof piece);
        if (n < 0) {
            rc = cli_error("generate", "token id %d has no text", id);
            break;
        }
        rc = emit(opt, gen, piece, (size_t)n);
    }
    if (rc == 0) rc = emit(opt, gen, piece, tokenizer_stream_flush(&stream, piece));
    if (gen->samples > 0) {
        gen->first_token_seconds = first_sample - start;
        gen->decode_seconds = last_sample - first_sample;
    }
    sampler_destroy(&smp);
    token_ids_free(&context);
    free(logits);
    return rc;
}

static double per_second(double count, double seconds) {
    return count > 0 && seconds > 0 ? count / seconds : NAN;
}

/* A JSON number, or null when it is NaN. */
static void print_json_number(const char *format, double value) {
    if (isnan(value)) fputs("null", stdout);
    else printf(format, value);
}

/*
 * The timings: prefill is the prompt's forward pass, time to first token adds the first sample,
 * decode covers every later sample (and the forward pass before it). Rates with nothing to
 * measure (-n 0, a single token) are left out: null in JSON, n/a in text.
 */
static void print_stats(const generate_options *opt, const cli_model *model, const generation *gen) {
    const char *backend = cli_backend_name(model->backend), *kv = kv_format_name(model->kv);
    int decoded = gen->samples > 0 ? gen->samples - 1 : 0;
    double prefill_rate = per_second((double)gen->prompt.len, gen->prefill_seconds);
    double decode_rate = per_second(decoded, gen->decode_seconds);
    double first_token_ms = gen->samples > 0 ? 1e3 * gen->first_token_seconds : NAN;
    /* Decode steps replay a CUDA graph only on cuda, with the cache and without --no-graph. */
    const bool graph = model->backend == BACKEND_CUDA && !opt->no_graph && !opt->no_kv_cache;
    if (opt->json) {
        printf("{\"backend\":\"%s\",\"kv\":\"%s\",\"kv_cache\":%s,\"decode_graph\":%s,"
               "\"seed\":%llu,\"prompt_tokens\":%zu,\"generated_tokens\":%zu,\"prefill_ms\":%.3f,"
               "\"context_restarts\":%d,\"restart_ms\":%.3f,\"time_to_first_token_ms\":", backend, kv, opt->no_kv_cache ? "false" : "true",
               graph ? "true" : "false", (unsigned long long)opt->sampling.seed, gen->prompt.len,
               gen->generated.len, 1e3 * gen->prefill_seconds, gen->restarts,
               1e3 * gen->restart_seconds);
        print_json_number("%.3f", first_token_ms);
        fputs(",\"prefill_tok_per_s\":", stdout);
        print_json_number("%.1f", prefill_rate);
        fputs(",\"decode_tok_per_s\":", stdout);
        print_json_number("%.1f", decode_rate);
        fputs(",\"ids\":[", stdout);
        for (size_t i = 0; i < gen->generated.len; i++)
            printf("%s%d", i ? "," : "", gen->generated.ids[i]);
        printf("],\"text\":");
        result_json_string(stdout, gen->text ? gen->text : "", gen->text_len);
        printf("}\n");
        return;
    }
    fprintf(stderr, "\n\ngpt2: prompt %zu tokens, prefill %.2f ms (%.1f tok/s)", gen->prompt.len,
            1e3 * gen->prefill_seconds, isnan(prefill_rate) ? 0.0 : prefill_rate);
    if (gen->samples > 0) fprintf(stderr, ", time to first token %.2f ms\n", first_token_ms);
    else fprintf(stderr, ", no token sampled (-n 0)\n");
    fprintf(stderr, "gpt2: generated %zu tokens, ", gen->generated.len);
    if (decoded > 0 && !isnan(decode_rate))
        fprintf(stderr, "decode %.1f tok/s (%.2f ms/token)", decode_rate,
                1e3 * gen->decode_seconds / decoded);
    else
        fprintf(stderr, "decode n/a (fewer than 2 tokens sampled)");
    fprintf(stderr, ", seed %llu, backend %s, kv %s%s%s\n", (unsigned long long)opt->sampling.seed,
            backend, kv, opt->no_kv_cache ? ", no kv cache" : "",
            model->backend == BACKEND_CUDA && opt->no_graph ? ", eager decode" : "");
    if (gen->restarts > 0)
        fprintf(stderr, "gpt2: the context filled %d times: its kept tokens re-prefilled in %.2f ms "
                "in all\n", gen->restarts, 1e3 * gen->restart_seconds);
}

/* Encodes the prompt; an empty prompt starts from <|endoftext|>, as GPT-2 was trained. */
static int encode_prompt(const generate_options *opt, const tokenizer *tok, generation *gen) {
    size_t len = 0;
    char *text = cli_read_text("generate", opt->prompt, opt->prompt_file, &len);
    if (!text) return 1;
    int rc = tokenizer_encode(tok, text, len, opt->allow_special, &gen->prompt);
    free(text);
    if (rc == 0 && gen->prompt.len == 0) rc = token_ids_push(&gen->prompt, TOKENIZER_EOT_ID);
    return rc == 0 ? 0 : cli_error("generate", "out of memory");
}

/*
 * The prompt must fit the model: its ids in the vocabulary, prompt + -n within the context, and
 * every token that goes through the model (all but the last drawn) within the KV cache.
 */
static int check_prompt(const generate_options *opt, const cli_model *model, const generation *gen) {
    const gpt2_config *c = &model->config;
    for (size_t i = 0; i < gen->prompt.len; i++)
        if (gen->prompt.ids[i] >= c->vocab_size)
            return cli_error("generate", "prompt token id %d is outside this model's vocabulary of %d",
                             gen->prompt.ids[i], c->vocab_size);
    const int kept = kv_policy_restart_keeps(&opt->policy.policy);
    const bool restarts = kept > 0;
    const bool past = gen->prompt.len + (size_t)opt->n_new > (size_t)c->n_positions;
    if (past && (!restarts || gen->prompt.len > (size_t)c->n_positions))
        return cli_error("generate", "prompt (%zu tokens) + -n %d exceeds the model's context of %d "
                         "tokens%s", gen->prompt.len, opt->n_new, c->n_positions,
                         restarts ? "" : " (the window and sinks KV policies run past it)");
    if (past && kept >= c->n_positions)
        return cli_error("generate", "--kv-policy keeps %d tokens, not fewer than the model's "
                         "context of %d, so it cannot run past it", kept, c->n_positions);
    size_t forwarded = gen->prompt.len + (opt->n_new > 0 ? (size_t)opt->n_new - 1 : 0);
    if (forwarded > (size_t)c->n_positions) forwarded = (size_t)c->n_positions;
    return cli_model_check_kv("generate", model, forwarded);
}

/* ---- --prompts: one batch of many prompts ---- */

/* The prompts of a --prompts file, encoded, and what each one generates. */
typedef struct {
    token_ids *prompts;        /* [count] */
    batch_request *requests;   /* [count] */
    int count;
} prompt_batch;

static void free_prompt_batch(prompt_batch *b) {
    for (int i = 0; i < b->count; i++) {
        token_ids_free(&b->prompts[i]);
        if (b->requests) free(b->requests[i].generated);
    }
    free(b->prompts);
    free(b->requests);
    *b = (prompt_batch){0};
}

/* Encodes line i as generate encodes -p (an empty one starts from <|endoftext|>) and checks it. */
static int encode_line(const generate_options *opt, const tokenizer *tok, const cli_model *model,
                       const prompt_list *lines, int i, prompt_batch *b) {
    token_ids *ids = &b->prompts[i];
    if (tokenizer_encode(tok, lines->text[i], lines->len[i], opt->allow_special, ids) != 0 ||
        (ids->len == 0 && token_ids_push(ids, TOKENIZER_EOT_ID) != 0))
        return cli_error("generate", "out of memory");
    for (size_t t = 0; t < ids->len; t++)
        if (ids->ids[t] >= model->config.vocab_size)
            return cli_error("generate", "%s line %d: token id %d is outside this model's vocabulary "
                             "of %d", opt->prompts_file, i + 1, ids->ids[t], model->config.vocab_size);
    batch_request *r = &b->requests[i];
    r->prompt = ids->ids;
    r->prompt_len = (int)(ids->len < (size_t)INT32_MAX ? ids->len : INT32_MAX);
    r->max_new = opt->n_new;
    r->seed = opt->sampling.seed + (uint64_t)i;
    r->generated = malloc((size_t)(opt->n_new > 0 ? opt->n_new : 1) * sizeof(int32_t));
    return r->generated ? 0 : cli_error("generate", "out of memory");
}

static int load_prompt_batch(const generate_options *opt, const tokenizer *tok,
                             const cli_model *model, prompt_batch *b) {
    size_t len = 0;
    char *bytes = cli_read_text("generate", NULL, opt->prompts_file, &len);
    if (!bytes) return 1;
    char err[GPT2_ERR_LEN];
    prompt_list lines;
    int rc = prompt_list_parse(&lines, bytes, len, err, sizeof err) == 0
                 ? 0 : cli_error("generate", "%s: %s", opt->prompts_file, err);
    if (rc == 0 && lines.count == 0) rc = cli_error("generate", "%s holds no prompt", opt->prompts_file);
    if (rc == 0) {
        b->count = lines.count;
        b->prompts = calloc((size_t)lines.count, sizeof *b->prompts);
        b->requests = calloc((size_t)lines.count, sizeof *b->requests);
        if (!b->prompts || !b->requests) rc = cli_error("generate", "out of memory");
    }
    for (int i = 0; rc == 0 && i < lines.count; i++) rc = encode_line(opt, tok, model, &lines, i, b);
    prompt_list_free(&lines);
    free(bytes);
    return rc;
}

/* Prints request i's completion: a JSON line, or its text under a header. 1 after an error. */
static int print_completion(const generate_options *opt, const tokenizer *tok, const prompt_batch *b,
                            int i) {
    const batch_request *r = &b->requests[i];
    if (r->state == REQUEST_FAILED) {
        if (opt->json) {
            printf("{\"index\":%d,\"error\":", i);
            result_json_string(stdout, r->error, strlen(r->error));
            printf("}\n");
        }
        return cli_error("generate", "prompt %d (line %d): %s; stopped after %d generated tokens",
                         i, i + 1, r->error, r->n_generated);
    }
    char *text = NULL;
    size_t text_len = 0;
    if (tokenizer_decode(tok, r->generated, (size_t)r->n_generated, &text, &text_len, NULL) != 0)
        return cli_error("generate", "prompt %d: a generated id has no text", i);
    if (opt->json) {
        printf("{\"index\":%d,\"seed\":%llu,\"prompt_tokens\":%d,\"generated_tokens\":%d,\"ids\":[",
               i, (unsigned long long)r->seed, r->prompt_len, r->n_generated);
        for (int t = 0; t < r->n_generated; t++) printf("%s%d", t ? "," : "", r->generated[t]);
        printf("],\"text\":");
        result_json_string(stdout, text, text_len);
        printf("}\n");
    } else {
        printf("=== prompt %d (line %d, seed %llu) ===\n", i, i + 1, (unsigned long long)r->seed);
        fwrite(text, 1, text_len, stdout);
        printf("\n");
    }
    free(text);
    return 0;
}

static void print_batch_stats(const prompt_batch *b, const batch_stats *st, double seconds) {
    long generated = 0;
    for (int i = 0; i < b->count; i++) generated += b->requests[i].n_generated;
    fprintf(stderr, "gpt2: %d prompts, %ld tokens generated in %.2f s (%.1f tok/s); %d prefills, "
            "%d decode steps, largest batch %d, %d preemptions, %d context restarts\n", b->count,
            generated, seconds, seconds > 0 ? (double)generated / seconds : 0.0, st->prefills,
            st->decode_steps, st->largest_batch, st->preemptions, st->restarts);
}

static int run_prompts(const generate_options *opt, const tokenizer *tok, cli_model *model) {
    prompt_batch b = {0};
    int rc = load_prompt_batch(opt, tok, model, &b);
    const int sample_vocab = model->config.vocab_size < TOKENIZER_VOCAB_SIZE
                                 ? model->config.vocab_size : TOKENIZER_VOCAB_SIZE;
    sampler smp;
    if (rc == 0 && sampler_create(&smp, sample_vocab, opt->sampling) != 0)
        rc = cli_error("generate", "out of memory");
    if (rc != 0) {
        free_prompt_batch(&b);
        return rc;
    }
    char err[GPT2_ERR_LEN];
    batch_stats stats;
    const double start = cli_now();
    if (batch_run(&model->cuda, b.requests, b.count, &smp, !opt->ignore_eos, TOKENIZER_EOT_ID,
                  &stats, err, sizeof err) != 0)
        rc = cli_error("generate", "%s", err);
    const double seconds = cli_now() - start;
    int failed = 0; /* a prompt that failed alone: the others still print, the exit says so */
    for (int i = 0; rc == 0 && i < b.count; i++) failed |= print_completion(opt, tok, &b, i);
    if (rc == 0) fflush(stdout);
    if (rc == 0 && !opt->json) print_batch_stats(&b, &stats, seconds);
    if (rc == 0) rc = failed;
    sampler_destroy(&smp);
    free_prompt_batch(&b);
    return rc;
}

/* One prompt (-p, -f or stdin), streamed as it generates. */
static int run_one_prompt(const generate_options *opt, const tokenizer *tok, cli_model *model,
                          const char *model_dir) {
    generation gen = {0};
    int rc = encode_prompt(opt, tok, &gen);
    if (rc == 0) rc = check_prompt(opt, model, &gen);
    const gpt2_config *config = &model->config;
    if (rc == 0 && !opt->json)
        fprintf(stderr, "gpt2: %s: %d layers, %d heads, %d wide, backend %s, kv %s\n", model_dir,
                config->n_layer, config->n_head, config->n_embd, cli_backend_name(model->backend),
                kv_format_name(model->kv));
    if (rc == 0) rc = run_generation(opt, tok, model, &gen);
    if (rc == 0) print_stats(opt, model, &gen);
    token_ids_free(&gen.prompt);
    token_ids_free(&gen.generated);
    free(gen.text);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    generate_options opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc) return rc == 2 ? 0 : rc;
    const char *model_dir = cli_model_dir("generate", opt.model_flag);
    if (!model_dir) return 1;
    tokenizer *tok = tokenizer_create();
    if (!tok) return cli_error("generate", "out of memory");
    cli_model model;
    const cuda_model_options cuda_options = {.kv_mem_bytes = opt.kv_mem_bytes,
                                             .max_seqs = opt.prompts_file ? opt.max_seqs : 1,
                                             .eager_decode = opt.no_graph,
                                             .unfused = opt.cuda.unfused,
                                             .device = opt.cuda.device};
    rc = cli_model_load_with("generate", model_dir, opt.backend, opt.kv, opt.kv_given, &cuda_options,
                             &model);
    if (rc == 0) {
        rc = cli_model_set_kv_policy("generate", &model, &opt.policy);
        if (rc == 0)
            rc = opt.prompts_file ? run_prompts(&opt, tok, &model)
                                  : run_one_prompt(&opt, tok, &model, model_dir);
        cli_model_destroy(&model);
    }
    tokenizer_destroy(tok);
    return rc;
}
