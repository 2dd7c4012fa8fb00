#include "model/config.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>

#include "model/error_sink.h"
#include "model/json.h"

/* Far below any real epsilon, yet far above where float would round it to zero. */
#define MIN_LAYER_NORM_EPS 1e-30

/* A required positive integer field that fits in int. */
static int get_positive_int(error_sink *sink, const json_value *root, const char *key, int *out) {
    const json_value *v = json_object_get(root, key);
    if (!v) return sink_fail(sink, "'%s' is missing", key);
    int64_t value;
    if (!json_get_int64(v, &value) || value <= 0 || value > INT_MAX)
        return sink_fail(sink, "'%s' must be a positive integer below 2^31", key);
    *out = (int)value;
    return 0;
}

/* An optional boolean field; *out keeps its default when the key is absent. */
static int get_optional_bool(error_sink *sink, const json_value *root, const char *key, bool *out) {
    const json_value *v = json_object_get(root, key);
    if (v && !json_get_bool(v, out)) return sink_fail(sink, "'%s' must be true or false", key);
    return 0;
}

/* n_positions, or n_ctx in older configs. */
static int read_context_length(error_sink *sink, const json_value *root, gpt2_config *config) {
    const char *key = json_object_get(root, "n_positions") ? "n_positions" : "n_ctx";
    if (!json_object_get(root, key)) return sink_fail(sink, "'n_positions' (or 'n_ctx') is missing");
    return get_positive_int(sink, root, key, &config->n_positions);
}

static int read_layer_norm_eps(error_sink *sink, const json_value *root, gpt2_config *config) {
    const json_value *v = json_object_get(root, "layer_norm_epsilon");
    config->layer_norm_eps = GPT2_DEFAULT_LAYER_NORM_EPS;
    if (!v) return 0;
    double eps;
    if (!json_get_double(v, &eps) || eps < MIN_LAYER_NORM_EPS || eps > 1)
        return sink_fail(sink, "'layer_norm_epsilon' must be a number in [%g, 1]", MIN_LAYER_NORM_EPS);
    config->layer_norm_eps = (float)eps;
    return 0;
}

static int check_activation(error_sink *sink, const json_value *root) {
    const json_value *v = json_object_get(root, "activation_function");
    if (!v) return 0; /* HF's default is gelu_new */
    size_t len;
    const char *name = json_get_string(v, &len);
    if (!name) return sink_fail(sink, "'activation_function' must be a string");
    /* gelu_pytorch_tanh is the same tanh approximation as gelu_new */
    if (json_string_equals(v, "gelu_new") || json_string_equals(v, "gelu_pytorch_tanh")) return 0;
    char printable[64];
    return sink_fail(sink, "activation_function '%s' is unsupported (only gelu_new / gelu_pytorch_tanh)",
                json_printable(name, len, printable, sizeof printable));
}

static int check_attention_variant(error_sink *sink, const json_value *root) {
    bool by_layer_idx = false; /* HF's defaults */
    bool scaled = true;
    if (get_optional_bool(sink, root, "scale_attn_by_inverse_layer_idx", &by_layer_idx) < 0)
        return -1;
    if (by_layer_idx) return sink_fail(sink, "scale_attn_by_inverse_layer_idx=true is unsupported");
    if (get_optional_bool(sink, root, "scale_attn_weights", &scaled) < 0) return -1;
    if (!scaled) return sink_fail(sink, "scale_attn_weights=false is unsupported");
    return 0;
}

static int check_shape(error_sink *sink, const json_value *root, const gpt2_config *config) {
    if ((int64_t)config->n_head * GPT2_HEAD_SIZE != config->n_embd)
        return sink_fail(sink, "n_embd %d is not %d * n_head %d: only head size %d is supported",
                    config->n_embd, GPT2_HEAD_SIZE, config->n_head, GPT2_HEAD_SIZE);
    const json_value *n_inner = json_object_get(root, "n_inner");
    int64_t inner;
    if (n_inner && n_inner->type != JSON_NULL &&
        !(json_get_int64(n_inner, &inner) && inner == 4 * (int64_t)config->n_embd))
        return sink_fail(sink, "'n_inner' must be null or 4 * n_embd (%lld)",
                    4 * (long long)config->n_embd);
    return 0;
}

static int read_config(error_sink *sink, const json_value *root, gpt2_config *config) {
    if (root->type != JSON_OBJECT)
        return sink_fail(sink, "expected a JSON object, found a JSON %s", json_type_name(root->type));
    if (get_positive_int(sink, root, "n_layer", &config->n_layer) < 0 ||
        get_positive_int(sink, root, "n_head", &config->n_head) < 0 ||
        get_positive_int(sink, root, "n_embd", &config->n_embd) < 0 ||
        get_positive_int(sink, root, "vocab_size", &config->vocab_size) < 0 ||
        read_context_length(sink, root, config) < 0 || read_layer_norm_eps(sink, root, config) < 0)
        return -1;
    if (check_shape(sink, root, config) < 0 || check_activation(sink, root) < 0 ||
        check_attention_variant(sink, root) < 0)
        return -1;
    return 0;
}

int gpt2_config_parse(gpt2_config *config, const char *text, size_t len, char *err,
                      size_t err_len) {
    error_sink sink = {err, err_len};
    char json_err[256];
    json_document *doc = json_parse(text, len, json_err, sizeof json_err);
    if (!doc) return sink_fail(&sink, "not valid JSON: %s", json_err);
    gpt2_config parsed = {0};
    int rc = read_config(&sink, json_root(doc), &parsed);
    json_free(doc);
    if (rc == 0) *config = parsed;
    return rc;
}
