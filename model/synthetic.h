/*
 * Synthetic GPT-2 checkpoints: deterministic pseudo-random weights at any shape, written as a
 * standard HF directory (config.json + F32 model.safetensors).
 *
 * They stand in for real weights in tests and benchmarks, at the real shapes, without
 * committing hundreds of megabytes. tests/fixtures/synthetic.py implements the same generator,
 * so an independent oracle (numpy, or HF transformers on the GPU machine) sees the same weights.
 *
 * The generator, element i of the k-th tensor in file order:
 *   h = splitmix64_mix(seed + k * 2^40 + i)           (the splitmix64 output function)
 *   u = (h >> 40) / 2^24                              (24 bits, uniform in [0, 1))
 *   value = (float)(offset + scale * (2u - 1))        (computed in double, rounded once)
 * with (offset, scale) = (0, 0.035) for matrices and embeddings (std ~0.02 as GPT-2's init),
 * (0, 0.02) for biases, (1, 0.1) for layernorm weights and (0, 0.02) for layernorm biases.
 * File order: wte, wpe, then per layer ln_1.{weight,bias}, attn.c_attn.{weight,bias},
 * attn.c_proj.{weight,bias}, ln_2.{weight,bias}, mlp.c_fc.{weight,bias},
 * mlp.c_proj.{weight,bias}, then ln_f.{weight,bias}. The lm_head is tied to wte.
 */
#ifndef GPT2_SYNTHETIC_H
#define GPT2_SYNTHETIC_H

#include <stddef.h>
#include <stdint.h>

#include "model/checkpoint.h"

/* The real GPT-2 shapes by name: "124M", "355M", "774M", "1558M". Returns -1 for others. */
int gpt2_config_preset(const char *name, gpt2_config *config);

/* Writes dir/config.json and dir/model.safetensors (dir must exist). Returns 0, or -1 + err. */
int synthetic_checkpoint_write(const char *dir, const gpt2_config *config, uint64_t seed,
                               char *err, size_t err_len);

#endif
