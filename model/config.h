/* Reading gpt2_config from the text of a HuggingFace GPT-2 config.json. */
#ifndef GPT2_CONFIG_H
#define GPT2_CONFIG_H

#include <stddef.h>

#include "model/checkpoint.h"

#define GPT2_DEFAULT_LAYER_NORM_EPS 1e-5f

/*
 * Parses and validates text[0..len). Rejects shapes other than head size 64, activations other
 * than gelu_new / gelu_pytorch_tanh, and the unsupported attention variants
 * (scale_attn_by_inverse_layer_idx, unscaled attention, n_inner other than 4 * n_embd).
 * On failure returns -1 and writes one line into err, without the file name.
 */
int gpt2_config_parse(gpt2_config *config, const char *text, size_t len, char *err, size_t err_len);

#endif
