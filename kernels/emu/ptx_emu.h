/*
 * The emulated twin of kernels/ptx.h: mma.sync, ldmatrix and cp.async on the SIMT emulator.
 *
 * kernels/ptx.h includes this file instead of its inline PTX when GPT2_CUDA_EMULATION is defined.
 * The functions keep the names, signatures and register-fragment layouts documented there, and
 * are built only on what any CUDA kernel may call: the warp shuffle __shfl_sync over all 32 lanes,
 * and __syncwarp. They do not depend on how the emulator stores its warps.
 *
 * mma: each lane gathers the two rows of A and the two columns of B that its four outputs need
 * from the lanes that hold them (32 shuffles), then computes d[i] = c[i] + sum over k = 0..15 of
 * A[row][k] * B[k][col], in that order, in fp32. A product of two fp16 values is exact in fp32, so
 * only the 16 additions round, each to nearest. A real tensor core adds in a different order and
 * precision (not reproduced): compare results against a reference with a tolerance.
 *
 * ldmatrix: each lane fetches its rows' addresses from the lanes that supply them, reads its own
 * 32 bits, then meets the warp at __syncwarp, so no lane overwrites a row that another lane has
 * still to read. A row address that is not 16-byte aligned stops the run, as it faults on a GPU.
 *
 * cp.async is emulated as a synchronous 16-byte copy at the call; commit and wait do nothing. The
 * bytes land at the copy, not at the wait, so any barrier after the copy publishes them here,
 * while on a GPU only a barrier after the wait does. A kernel that reads before its wait, or whose
 * only barrier lies between its copies and their wait, passes here and fails on a GPU: those
 * mistakes are left to the GPU run. A missing barrier between the copies and their use is caught
 * by the race shaker as far as it catches one after plain stores.
 */
#ifndef GPT2_PTX_EMU_H
#define GPT2_PTX_EMU_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cuda_fp16.h>

/* ---- helpers: lanes, exchanges, faults ---- */

#define PTX_EMU_ALL_LANES 0xffffffffu

/* This thread's lane as CUDA numbers lanes: its linear index in the block, modulo 32. */
static __device__ __forceinline__ unsigned ptx_emu_lane(void) {
    return ((threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x) % 32;
}

/* Lane src_lane's pointer p, exchanged as two 32-bit halves. */
static __device__ __forceinline__ const unsigned char *ptx_emu_shfl_pointer(const void *p,
                                                                           unsigned src_lane) {
    uint64_t bits = (uint64_t)(uintptr_t)p;
    uint32_t low = __shfl_sync(PTX_EMU_ALL_LANES, (uint32_t)bits, (int)src_lane);
    uint32_t high = __shfl_sync(PTX_EMU_ALL_LANES, (uint32_t)(bits >> 32), (int)src_lane);
    return (const unsigned char *)(uintptr_t)((uint64_t)high << 32 | low);
}

/* A misaligned operand faults on a GPU: say which, then stop the run as __trap does (the
 * emulator names the kernel and the thread). */
static __device__ __forceinline__ void ptx_emu_require_aligned16(const void *p, const char *what) {
    if ((uintptr_t)p % 16 != 0) {
        fprintf(stderr, "emulator: %s: address %p is not 16-byte aligned\n", what, p);
        __trap();
    }
}

/* The fp16 value in the low (high = 0) or high (high = 1) 16 bits of a register. */
static __device__ __forceinline__ float ptx_emu_f16(uint32_t reg, int high) {
    __half_raw raw;
    raw.x = (unsigned short)(reg >> (16 * high));
    return __half2float(__half(raw));
}

/* ---- tensor-core multiply-accumulate ---- */

/* Rows g and g+8 of A, as floats: held by lanes 4g..4g+3 (lane 4g+q holds columns 2q, 2q+1 in a[0]
 * and a[1], columns 2q+8, 2q+9 in a[2] and a[3]). */
static __device__ __forceinline__ void ptx_emu_gather_a_rows(float rows[2][16], const uint32_t a[4],
                                                             unsigned g) {
    for (unsigned q = 0; q < 4; q++)
        for (int reg = 0; reg < 4; reg++) {
            uint32_t v = __shfl_sync(PTX_EMU_ALL_LANES, a[reg], (int)(4 * g + q));
            int row = reg % 2, col = 2 * (int)q + 8 * (reg / 2);
            rows[row][col] = ptx_emu_f16(v, 0);
            rows[row][col + 1] = ptx_emu_f16(v, 1);
        }
}

/* Columns 2t and 2t+1 of B, as floats: column n is held by lanes 4n..4n+3 (lane 4n+q holds rows
 * 2q, 2q+1 in b[0], rows 2q+8, 2q+9 in b[1]). */
static __device__ __forceinline__ void ptx_emu_gather_b_cols(float cols[2][16], const uint32_t b[2],
                                                             unsigned t) {
    for (int n = 0; n < 2; n++)
        for (unsigned q = 0; q < 4; q++)
            for (int reg = 0; reg < 2; reg++) {
                uint32_t v = __shfl_sync(PTX_EMU_ALL_LANES, b[reg], (int)(4 * (2 * t + n) + q));
                int k = 2 * (int)q + 8 * reg;
                cols[n][k] = ptx_emu_f16(v, 0);
                cols[n][k + 1] = ptx_emu_f16(v, 1);
            }
}

/* d = A * B + c for one 16x8x16 tile: fp16 A and B, fp32 accumulate. d may be c. */
static __device__ __forceinline__ void mma_m16n8k16_f16_f32(float d[4], const uint32_t a[4],
                                                            const uint32_t b[2], const float c[4]) {
    unsigned lane = ptx_emu_lane();
    float a_rows[2][16], b_cols[2][16];
    ptx_emu_gather_a_rows(a_rows, a, lane / 4);
    ptx_emu_gather_b_cols(b_cols, b, lane % 4);
    for (int i = 0; i < 4; i++) { /* d[i] is D[g + 8 * (i / 2)][2t + i % 2] */
        float sum = c[i];
        for (int k = 0; k < 16; k++) sum += a_rows[i / 2][k] * b_cols[i % 2][k];
        d[i] = sum;
    }
}

/* ---- ldmatrix ---- */

/* Row i of matrix j, as supplied by lane 8j + i. */
static __device__ __forceinline__ const unsigned char *ptx_emu_matrix_row(const void *smem_row, int j,
                                                                         unsigned i) {
    const unsigned char *row = ptx_emu_shfl_pointer(smem_row, 8 * (unsigned)j + i);
    ptx_emu_require_aligned16(row, "ldmatrix");
    return row;
}

/* `count` 8x8 fp16 matrices, transposed if trans. */
static __device__ __forceinline__ void ptx_emu_ldmatrix(uint32_t *r, int count, bool trans,
                                                        const void *smem_row) {
    unsigned lane = ptx_emu_lane(), g = lane / 4, t = lane % 4;
    for (int j = 0; j < count; j++) {
        if (!trans) { /* r[j] = M_j[g][2t..2t+1] */
            memcpy(&r[j], ptx_emu_matrix_row(smem_row, j, g) + 4 * t, 4);
        } else { /* r[j] = (M_j[2t][g], M_j[2t+1][g]) */
            uint16_t low, high;
            memcpy(&low, ptx_emu_matrix_row(smem_row, j, 2 * t) + 2 * g, 2);
            memcpy(&high, ptx_emu_matrix_row(smem_row, j, 2 * t + 1) + 2 * g, 2);
            r[j] = (uint32_t)high << 16 | low;
        }
    }
    __syncwarp();
}

static __device__ __forceinline__ void ldmatrix_x1(uint32_t r[1], const void *smem_row) {
    ptx_emu_ldmatrix(r, 1, false, smem_row);
}

static __device__ __forceinline__ void ldmatrix_x2(uint32_t r[2], const void *smem_row) {
    ptx_emu_ldmatrix(r, 2, false, smem_row);
}

static __device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *smem_row) {
    ptx_emu_ldmatrix(r, 4, false, smem_row);
}

static __device__ __forceinline__ void ldmatrix_x1_trans(uint32_t r[1], const void *smem_row) {
    ptx_emu_ldmatrix(r, 1, true, smem_row);
}

static __device__ __forceinline__ void ldmatrix_x2_trans(uint32_t r[2], const void *smem_row) {
    ptx_emu_ldmatrix(r, 2, true, smem_row);
}

static __device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void *smem_row) {
    ptx_emu_ldmatrix(r, 4, true, smem_row);
}

/* ---- cp.async, as synchronous copies ---- */

static __device__ __forceinline__ void cp_async_16(void *smem_dst, const void *gmem_src) {
    ptx_emu_require_aligned16(smem_dst, "cp.async destination");
    ptx_emu_require_aligned16(gmem_src, "cp.async source");
    memcpy(smem_dst, gmem_src, 16);
}

static __device__ __forceinline__ void cp_async_16_zfill(void *smem_dst, const void *gmem_src,
                                                         bool valid) {
    ptx_emu_require_aligned16(smem_dst, "cp.async destination");
    if (valid) {
        ptx_emu_require_aligned16(gmem_src, "cp.async source");
        memcpy(smem_dst, gmem_src, 16);
    } else {
        memset(smem_dst, 0, 16);
    }
}

static __device__ __forceinline__ void cp_async_commit(void) {}

template <int pending>
static __device__ __forceinline__ void cp_async_wait_group(void) {}

static __device__ __forceinline__ void cp_async_wait_all(void) {}

#endif
