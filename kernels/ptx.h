/*
 * Tensor cores and asynchronous copies, the one place where kernels use inline PTX.
 *
 * Under nvcc each function below is one PTX instruction (sm_80 and later). In the emulation build
 * (GPT2_CUDA_EMULATION) this header includes kernels/emu/ptx_emu.h instead, whose functions have
 * the same names and signatures and reproduce the same register-fragment layouts on the SIMT
 * emulator. That include is the only switch: kernels call these functions and never test the build.
 *
 * Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type" and
 * "Warp-level matrix load instruction: ldmatrix"). In a warp, lane l has group g = l / 4 and
 * thread-in-group t = l % 4. A register holds two fp16 values, the lower column (or row) in its
 * low 16 bits.
 *   mma A, 16x16 row-major:  a[0] = A[g][2t..2t+1],   a[1] = A[g+8][2t..2t+1],
 *                            a[2] = A[g][2t+8..2t+9], a[3] = A[g+8][2t+8..2t+9]
 *   mma B, 16x8 ("col"):     b[0] = B[2t..2t+1][g],   b[1] = B[2t+8..2t+9][g]
 *   mma C and D, 16x8 fp32:  c[0] = C[g][2t], c[1] = C[g][2t+1], c[2] = C[g+8][2t], c[3] = C[g+8][2t+1]
 *   ldmatrix of 8x8 fp16 matrices: lane 8j + i gives the address of row i of matrix j (lanes
 *   0-7 for .x1, 0-15 for .x2, all 32 for .x4; other lanes' addresses are ignored). Each row is
 *   16 contiguous bytes, 16-byte aligned, in shared memory. Then r[j] = M_j[g][2t..2t+1], or with
 *   .trans r[j] = (M_j[2t][g], M_j[2t+1][g]).
 * So ldmatrix_x4 over the four 8x8 quarters of a row-major 16x16 tile (rows 0-7 and 8-15 of
 * columns 0-7, then of columns 8-15) gives an mma A fragment, and ldmatrix_x2_trans over the two
 * 8x8 halves of a row-major (k-major) 16x8 tile gives an mma B fragment.
 *
 * The mma and ldmatrix functions are warp-collective: all 32 lanes of the warp call them together,
 * converged. The cp.async family is per thread.
 */
#ifndef GPT2_PTX_H
#define GPT2_PTX_H

#include <stdint.h>

#ifdef GPT2_CUDA_EMULATION
#include "kernels/emu/ptx_emu.h"
#else

/* A generic pointer into shared memory as the 32-bit .shared address that PTX operands take. */
static __device__ __forceinline__ uint32_t ptx_shared_address(const void *smem) {
    return (uint32_t)__cvta_generic_to_shared(smem);
}

/* ---- tensor-core multiply-accumulate ---- */

/* d = A * B + c for one 16x8x16 tile: fp16 A and B, fp32 accumulate. d may be c. */
static __device__ __forceinline__ void mma_m16n8k16_f16_f32(float d[4], const uint32_t a[4],
                                                            const uint32_t b[2], const float c[4]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
                   "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

/* ---- ldmatrix: 8x8 fp16 matrices from shared memory into mma fragments ---- */
/* smem_row: this lane's row address (see the file comment for which lanes are read). Order the
 * stores of those rows before the load with __syncthreads or __syncwarp: other lanes wrote them. */

static __device__ __forceinline__ void ldmatrix_x1(uint32_t r[1], const void *smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n"
                 : "=r"(r[0])
                 : "r"(ptx_shared_address(smem_row)));
}

static __device__ __forceinline__ void ldmatrix_x2(uint32_t r[2], const void *smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(ptx_shared_address(smem_row)));
}

static __device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(ptx_shared_address(smem_row)));
}

static __device__ __forceinline__ void ldmatrix_x1_trans(uint32_t r[1], const void *smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
                 : "=r"(r[0])
                 : "r"(ptx_shared_address(smem_row)));
}

static __device__ __forceinline__ void ldmatrix_x2_trans(uint32_t r[2], const void *smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(ptx_shared_address(smem_row)));
}

static __device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void *smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(ptx_shared_address(smem_row)));
}

/* ---- cp.async: global to shared copies that bypass registers (and L1: .cg) ---- */
/* Both addresses 16-byte aligned. The bytes are in shared memory only after a wait that covers
 * their group, and visible to other threads only after a barrier following that wait. */

static __device__ __forceinline__ void cp_async_16(void *smem_dst, const void *gmem_src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n"
                 :
                 : "r"(ptx_shared_address(smem_dst)), "l"(__cvta_generic_to_global(gmem_src))
                 : "memory");
}

/* The same, or 16 zero bytes when !valid; gmem_src is then not read but must still be a global
 * address (pass any in-bounds one). */
static __device__ __forceinline__ void cp_async_16_zfill(void *smem_dst, const void *gmem_src,
                                                         bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
                 :
                 : "r"(ptx_shared_address(smem_dst)), "l"(__cvta_generic_to_global(gmem_src)),
                   "r"(valid ? 16 : 0)
                 : "memory");
}

/* Closes the group of this thread's cp.async calls since the last commit. */
static __device__ __forceinline__ void cp_async_commit(void) {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

/* Waits until at most `pending` of this thread's committed groups are still in flight. */
template <int pending>
static __device__ __forceinline__ void cp_async_wait_group(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(pending) : "memory");
}

/* Waits for all of this thread's cp.async calls, committed or not. */
static __device__ __forceinline__ void cp_async_wait_all(void) {
    asm volatile("cp.async.wait_all;\n" ::: "memory");
}

#endif /* GPT2_CUDA_EMULATION */

#endif
