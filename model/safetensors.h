/*
 * Safetensors header parsing and validation, from an in-memory copy (or mapping) of the file.
 *
 * File layout: an 8-byte little-endian header length N, N bytes of JSON header, then the data
 * section. The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]}
 * (offsets relative to the data section) and may hold a "__metadata__" object of strings.
 *
 * Validation guarantees, for every tensor of a successfully parsed header: a known dtype, a
 * shape of non-negative dimensions whose element count and byte size fit in int64, a byte range
 * of exactly numel * dtype size that lies inside the file, and a name free of control characters;
 * and, as the reference implementation requires, the tensors' ranges cover the data section
 * exactly: back to back from its start to the end of the file, with no gap, no overlap and no
 * trailing bytes.
 */
#ifndef GPT2_SAFETENSORS_H
#define GPT2_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "model/json.h"

#define SAFETENSORS_MAX_RANK 8
#define SAFETENSORS_MAX_HEADER_LEN ((uint64_t)100 << 20) /* the reference implementation's cap */

typedef enum {
    SAFETENSORS_BOOL,
    SAFETENSORS_U8,
    SAFETENSORS_I8,
    SAFETENSORS_F8_E4M3,
    SAFETENSORS_F8_E5M2,
    SAFETENSORS_F8_E8M0,
    SAFETENSORS_I16,
    SAFETENSORS_U16,
    SAFETENSORS_F16,
    SAFETENSORS_BF16,
    SAFETENSORS_I32,
    SAFETENSORS_U32,
    SAFETENSORS_F32,
    SAFETENSORS_I64,
    SAFETENSORS_U64,
    SAFETENSORS_F64,
} safetensors_dtype;

typedef struct {
    const char *name; /* NUL-terminated; owned by the header */
    safetensors_dtype dtype;
    int rank;
    int64_t shape[SAFETENSORS_MAX_RANK]; /* [rank] */
    int64_t numel;                       /* 1 for rank 0 */
    size_t offset;                       /* from the start of the file */
    size_t nbytes;                       /* numel * dtype size */
} safetensors_tensor;

typedef struct {
    safetensors_tensor *tensors; /* [n_tensors], sorted by name */
    size_t n_tensors;
    const json_value *metadata; /* the "__metadata__" object, or NULL */
    size_t data_offset;         /* where the data section starts: 8 + header length */
    json_document *doc;         /* owns the names and metadata */
} safetensors_header;

/*
 * Parses and validates the header of the safetensors file in file[0..file_len). On failure
 * returns -1, writes one line into err (without the file name, which the caller knows; tensor
 * errors start with "tensor '<name>': ") and leaves *header empty. Returns 0 on success.
 */
int safetensors_parse_header(safetensors_header *header, const void *file, size_t file_len,
                             char *err, size_t err_len);
void safetensors_free_header(safetensors_header *header);

/* The tensor called name, or NULL. */
const safetensors_tensor *safetensors_find(const safetensors_header *header, const char *name);

const char *safetensors_dtype_name(safetensors_dtype dtype); /* as written in files: "F32" */
size_t safetensors_dtype_size(safetensors_dtype dtype);      /* bytes per element */

/* Writes a shape as "[768, 2304]" into buf (truncated to buf_len) and returns buf. */
const char *safetensors_format_shape(const int64_t *shape, int rank, char *buf, size_t buf_len);

#endif
