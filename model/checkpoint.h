/*
 * HuggingFace GPT-2 checkpoints: a directory with config.json and model.safetensors.
 *
 * The safetensors file is memory-mapped; tensors are views into the mapping in their stored
 * dtype (F32, F16 or BF16), validated for name, shape, dtype and byte range before use, and
 * read once at open to refuse a NaN or infinity in any tensor the model uses.
 * Conv1D weights keep HF's [in, out] layout.
 */
#ifndef GPT2_CHECKPOINT_H
#define GPT2_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GPT2_HEAD_SIZE 64 /* every GPT-2 size; anything else is rejected */
#define GPT2_ERR_LEN 512

typedef struct {
    int n_layer;
    int n_head;
    int n_embd;      /* C = n_head * GPT2_HEAD_SIZE */
    int n_positions; /* max context */
    int vocab_size;
    float layer_norm_eps;
} gpt2_config;

typedef enum { GPT2_F32, GPT2_F16, GPT2_BF16 } gpt2_dtype;

/* A read-only view of one tensor inside the mapped file. */
typedef struct {
    const void *data; /* [numel] of dtype, inside the mapping; may be unaligned */
    gpt2_dtype dtype;
    int ndim;
    int64_t shape[4];
    int64_t numel;
    const char *name; /* the name as stored in the file */
} gpt2_tensor;

typedef struct {
    gpt2_tensor ln_1_w, ln_1_b;         /* [C] */
    gpt2_tensor attn_w;                 /* [C, 3C] (Conv1D: in, out) */
    gpt2_tensor attn_b;                 /* [3C] */
    gpt2_tensor attn_proj_w;            /* [C, C] */
    gpt2_tensor attn_proj_b;            /* [C] */
    gpt2_tensor ln_2_w, ln_2_b;         /* [C] */
    gpt2_tensor fc_w;                   /* [C, 4C] */
    gpt2_tensor fc_b;                   /* [4C] */
    gpt2_tensor mlp_proj_w;             /* [4C, C] */
    gpt2_tensor mlp_proj_b;             /* [C] */
} gpt2_layer_tensors;

typedef struct gpt2_mapped_file gpt2_mapped_file;

typedef struct {
    gpt2_config config;
    gpt2_tensor wte;              /* [V, C] */
    gpt2_tensor wpe;              /* [n_positions, C] */
    gpt2_layer_tensors *layers;   /* [n_layer] */
    gpt2_tensor ln_f_w, ln_f_b;   /* [C] */
    gpt2_tensor lm_head;          /* [V, C]; a copy of wte's view when tied */
    bool lm_head_tied;            /* true when the file has no separate lm_head.weight */
    gpt2_mapped_file *file;       /* owns the mapping and the parsed header */
} gpt2_checkpoint;

/*
 * Opens model_dir/config.json and model_dir/model.safetensors. On failure returns -1 and writes
 * one line into err that names the file and, where one is at fault, the tensor; *ckpt is then
 * left zeroed, so closing it is harmless.
 */
int gpt2_checkpoint_open(gpt2_checkpoint *ckpt, const char *model_dir, char *err, size_t err_len);
void gpt2_checkpoint_close(gpt2_checkpoint *ckpt);

/* Converts a tensor of any supported dtype into out[numel] as fp32. */
void gpt2_tensor_to_f32(const gpt2_tensor *t, float *out);

#endif
