/*
 * libFuzzer harness for the safetensors header parser (tests/fuzz/run.sh builds and runs it;
 * tests/fuzz/replay.c replays the seed corpus under ctest). Any input must either fail with one
 * error line or yield a table whose every promise holds (the tensors, in offset order, cover the
 * data section exactly); otherwise the harness aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_tensor(const safetensors_header *h, const safetensors_tensor *t,
                         const uint8_t *data, size_t size) {
    int64_t numel = 1;
    for (int d = 0; d < t->rank; d++) {
        if (t->shape[d] < 0) abort();
        numel *= t->shape[d];
    }
    if (t->rank < 0 || t->rank > SAFETENSORS_MAX_RANK || numel != t->numel) abort();
    if ((uint64_t)t->numel * safetensors_dtype_size(t->dtype) != t->nbytes) abort();
    if (t->offset < h->data_offset || t->offset > size || t->nbytes > size - t->offset) abort();
    if (safetensors_find(h, t->name) != t) abort();
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < t->nbytes; i++) sink ^= data[t->offset + i]; /* ASan checks the range */
    (void)sink;
}

static int by_offset(const void *a, const void *b) {
    const safetensors_tensor *const *x = a, *const *y = b;
    if ((*x)->offset != (*y)->offset) return (*x)->offset < (*y)->offset ? -1 : 1;
    return ((*x)->nbytes > (*y)->nbytes) - ((*x)->nbytes < (*y)->nbytes);
}

/* In offset order, each tensor starts where the one before ends, from the data section's start
 * to the end of the file. */
static void check_coverage(const safetensors_header *h, size_t size) {
    const safetensors_tensor **order = malloc((h->n_tensors + 1) * sizeof *order);
    if (!order) return;
    for (size_t i = 0; i < h->n_tensors; i++) order[i] = &h->tensors[i];
    qsort(order, h->n_tensors, sizeof *order, by_offset);
    size_t end = h->data_offset;
    for (size_t i = 0; i < h->n_tensors; i++) {
        if (order[i]->offset != end) abort();
        end += order[i]->nbytes;
    }
    if (end != size) abort();
    free(order);
}

static void parse_and_check(const uint8_t *data, size_t size) {
    safetensors_header h;
    char err[256] = "";
    if (safetensors_parse_header(&h, data, size, err, sizeof err) < 0) {
        if (err[0] == '\0' || strchr(err, '\n')) abort();
        if (h.tensors || h.doc || h.n_tensors) abort();
        return;
    }
    for (size_t i = 0; i < h.n_tensors; i++) {
        check_tensor(&h, &h.tensors[i], data, size);
        if (i > 0 && strcmp(h.tensors[i - 1].name, h.tensors[i].name) >= 0) abort();
    }
    check_coverage(&h, size);
    safetensors_free_header(&h);
}

/*
 * Each input runs as is, and again with its length field folded into the file, so that mutations
 * reach the JSON and the tensor table instead of dying at the framing check.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    parse_and_check(data, size);
    if (size < 8) return 0;
    uint8_t *framed = malloc(size);
    if (!framed) return 0;
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | data[i];
    header_len %= size - 7;
    for (int i = 0; i < 8; i++) framed[i] = (uint8_t)(header_len >> (8 * i));
    memcpy(framed + 8, data + 8, size - 8);
    parse_and_check(framed, size);
    free(framed);
    return 0;
}
