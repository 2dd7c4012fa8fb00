/*
 * The tensor-core wrapper kernels/ptx.h, on fresh random fp16 inputs with poisoned outputs:
 *   - every ldmatrix form (.x1, .x2, .x4, each plain and .trans), lane by lane, against the
 *     fragment layout the PTX ISA documents, with rows given out of order;
 *   - one 16x8x16 mma (B given k-major through ldmatrix .trans, and n-major), staged in shared
 *     memory with cp.async, against a plain fp64 product;
 *   - a 64x64x64 product tiled over four warps, staged by cp.async in two commit groups
 *     (cp_async_wait_group<1>, then <0>), with A's last rows zero-filled by the predicated copy.
 * On a GPU this checks the inline PTX; in the emulation build, its twin kernels/emu/ptx_emu.h.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_fp16.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "kernels/launch.h"
#include "kernels/ptx.h"
#include "tests/check.h"

#define GEMM_TILE 64        /* the tiled product: [64 x 64] = [64 x 64] * [64 x 64] */
#define GEMM_LDS (64 + 8)   /* its shared row stride in halves: 144 bytes, rows stay 16-aligned */
#define GEMM_VALID_ROWS 50  /* rows of A that exist; the copy zero-fills the rest */
#define GEMM_THREADS 128    /* four warps, each a 32 x 32 quarter of the output */

/* ---- kernels ---- */

/* One warp. Shared row R holds in[R][0..7]; lane l passes the address of row row_of_lane[l] to
 * the ldmatrix form chosen by count (1, 2, 4) and trans, and writes r[0..count-1] to out[l]. */
static __global__ void ldmatrix_kernel(uint32_t *out /* [32][4] */, const __half *in /* [32][8] */,
                                       const int *row_of_lane /* [32] */, int count, int trans) {
    __shared__ __align__(16) __half rows[32][8];
    int lane = threadIdx.x;
    for (int c = 0; c < 8; c++) rows[lane][c] = in[8 * lane + c];
    __syncwarp();
    const __half *row = rows[row_of_lane[lane]];
    uint32_t r[4];
    if (count == 1 && !trans) ldmatrix_x1(r, row);
    if (count == 1 && trans) ldmatrix_x1_trans(r, row);
    if (count == 2 && !trans) ldmatrix_x2(r, row);
    if (count == 2 && trans) ldmatrix_x2_trans(r, row);
    if (count == 4 && !trans) ldmatrix_x4(r, row);
    if (count == 4 && trans) ldmatrix_x4_trans(r, row);
    for (int j = 0; j < count; j++) out[4 * lane + j] = r[j];
}

/* One warp: d = a * b + c for one 16x8x16 tile. b is k-major ([16][8], read with ldmatrix .trans)
 * when b_kmajor, else n-major ([8][16], plain ldmatrix). */
static __global__ void mma_tile_kernel(float *d /* [16][8] */, const __half *a /* [16][16] */,
                                       const __half *b /* [16][8] or [8][16] */,
                                       const float *c /* [16][8] */, int b_kmajor) {
    __shared__ __align__(16) __half a_s[16 * 16];
    __shared__ __align__(16) __half b_s[16 * 8];
    int lane = threadIdx.x, g = lane / 4, t = lane % 4;
    cp_async_16(a_s + 8 * lane, a + 8 * lane); /* 32 chunks of 16 bytes */
    if (lane < 16) cp_async_16(b_s + 8 * lane, b + 8 * lane);
    cp_async_commit();
    cp_async_wait_all();
    __syncwarp();

    uint32_t a_frag[4], b_frag[2]; /* lane 8j + i: row i of 8x8 quarter j (rows 8(j%2), cols 8(j/2)) */
    ldmatrix_x4(a_frag, a_s + 16 * (lane % 8 + 8 * (lane / 8 % 2)) + 8 * (lane / 16));
    if (b_kmajor) /* matrices: k rows 0-7 and 8-15, 8 n each */
        ldmatrix_x2_trans(b_frag, b_s + 8 * (lane % 16));
    else /* matrices: n rows 0-7 of k 0-7, and of k 8-15 */
        ldmatrix_x2(b_frag, b_s + 16 * (lane % 8) + 8 * (lane / 8 % 2));
    float acc[4] = {c[8 * g + 2 * t], c[8 * g + 2 * t + 1], c[8 * (g + 8) + 2 * t],
                    c[8 * (g + 8) + 2 * t + 1]};
    mma_m16n8k16_f16_f32(acc, a_frag, b_frag, acc);
    d[8 * g + 2 * t] = acc[0];
    d[8 * g + 2 * t + 1] = acc[1];
    d[8 * (g + 8) + 2 * t] = acc[2];
    d[8 * (g + 8) + 2 * t + 1] = acc[3];
}

/* Copies k columns [32 s, 32 s + 32) of A (zero rows past valid_rows) and k rows of B into shared
 * memory, as this thread's share of the block's cp.async calls. */
static __device__ void gemm_stage_slab(__half (*a_s)[GEMM_LDS], __half (*b_s)[GEMM_LDS],
                                       const __half *a /* [valid_rows][64] */, int valid_rows,
                                       const __half *b /* [64][64] */, int s) {
    for (int i = threadIdx.x; i < 64 * 4; i += GEMM_THREADS) {
        int row = i / 4, col = 32 * s + 8 * (i % 4);
        bool valid = row < valid_rows;
        cp_async_16_zfill(&a_s[row][col], a + GEMM_TILE * (valid ? row : 0) + col, valid);
    }
    for (int i = threadIdx.x; i < 32 * 8; i += GEMM_THREADS) {
        int row = 32 * s + i / 8, col = 8 * (i % 8);
        cp_async_16(&b_s[row][col], b + GEMM_TILE * row + col);
    }
    cp_async_commit();
}

/* One block of four warps: d = a * b, all row-major, b k-major. Warp w computes rows
 * 32 (w / 2) .. +31 and columns 32 (w % 2) .. +31 as 2 x 4 mma tiles. */
static __global__ void mma_gemm64_kernel(float *d /* [64][64] */,
                                         const __half *a /* [valid_rows][64] */, int valid_rows,
                                         const __half *b /* [64][64] */) {
    __shared__ __align__(16) __half a_s[GEMM_TILE][GEMM_LDS];
    __shared__ __align__(16) __half b_s[GEMM_TILE][GEMM_LDS];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
    int row0 = 32 * (warp / 2), col0 = 32 * (warp % 2);
    gemm_stage_slab(a_s, b_s, a, valid_rows, b, 0);
    gemm_stage_slab(a_s, b_s, a, valid_rows, b, 1);

    float acc[2][4][4] = {};
    for (int s = 0; s < 2; s++) {
        if (s == 0)
            cp_async_wait_group<1>(); /* slab 0 has landed, slab 1 may be in flight */
        else
            cp_async_wait_group<0>();
        __syncthreads();
        for (int k0 = 32 * s; k0 < 32 * s + 32; k0 += 16) {
            uint32_t a_frag[2][4], b_frag[4][2];
            for (int mi = 0; mi < 2; mi++)
                ldmatrix_x4(a_frag[mi], &a_s[row0 + 16 * mi + lane % 8 + 8 * (lane / 8 % 2)]
                                            [k0 + 8 * (lane / 16)]);
            for (int nj = 0; nj < 2; nj++) { /* matrices: k0 and k0 + 8 rows, of n tiles 2nj, 2nj+1 */
                uint32_t r[4];
                ldmatrix_x4_trans(r, &b_s[k0 + lane % 8 + 8 * (lane / 8 % 2)]
                                         [col0 + 16 * nj + 8 * (lane / 16)]);
                b_frag[2 * nj][0] = r[0];
                b_frag[2 * nj][1] = r[1];
                b_frag[2 * nj + 1][0] = r[2];
                b_frag[2 * nj + 1][1] = r[3];
            }
            for (int mi = 0; mi < 2; mi++)
                for (int ni = 0; ni < 4; ni++)
                    mma_m16n8k16_f16_f32(acc[mi][ni], a_frag[mi], b_frag[ni], acc[mi][ni]);
        }
    }
    for (int mi = 0; mi < 2; mi++)
        for (int ni = 0; ni < 4; ni++)
            for (int i = 0; i < 4; i++)
                d[GEMM_TILE * (row0 + 16 * mi + g + 8 * (i / 2)) + col0 + 8 * ni + 2 * t + i % 2] =
                    acc[mi][ni][i];
}

/* ---- host side ---- */

static float next_uniform(uint64_t *state) { /* xorshift64*, in [0, 1) */
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return (float)((*state * 0x2545F4914F6CDD1DULL) >> 40) / 16777216.0f;
}

/* n fp16 values in [-1, 1), their exact values in `exact` when it is not NULL. */
static void fill_random_f16(__half *h, double *exact, int n, uint64_t *rng) {
    for (int i = 0; i < n; i++) {
        h[i] = __float2half(2.0f * next_uniform(rng) - 1.0f);
        if (exact) exact[i] = (double)__half2float(h[i]);
    }
}

static uint16_t f16_bits(__half h) {
    uint16_t bits;
    memcpy(&bits, &h, sizeof bits);
    return bits;
}

static void *device_copy(const void *host, size_t bytes) {
    void *dev;
    CUDA_CHECK(cudaMalloc(&dev, bytes));
    CUDA_CHECK(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice));
    return dev;
}

static void *device_poisoned(size_t bytes) { /* all bits set: NaN in fp16 and fp32 */
    void *dev;
    CUDA_CHECK(cudaMalloc(&dev, bytes));
    CUDA_CHECK(cudaMemset(dev, 0xFF, bytes));
    return dev;
}

/* Each form, lane by lane: the documented layout, from a random permutation of row addresses. */
static void check_ldmatrix_layouts(uint64_t *rng) {
    __half in[32 * 8];
    int row_of_lane[32];
    fill_random_f16(in, NULL, 32 * 8, rng);
    for (int i = 0; i < 32; i++) row_of_lane[i] = i;
    for (int i = 31; i > 0; i--) { /* Fisher-Yates */
        int j = (int)(next_uniform(rng) * (float)(i + 1)), tmp = row_of_lane[i];
        row_of_lane[i] = row_of_lane[j];
        row_of_lane[j] = tmp;
    }
    __half *dev_in = (__half *)device_copy(in, sizeof in);
    int *dev_rows = (int *)device_copy(row_of_lane, sizeof row_of_lane);
    uint32_t *dev_out = (uint32_t *)device_poisoned(32 * 4 * sizeof(uint32_t));
    const int counts[3] = {1, 2, 4};
    for (int ci = 0; ci < 3; ci++)
        for (int trans = 0; trans < 2; trans++) {
            int count = counts[ci];
            CUDA_CHECK(cudaMemset(dev_out, 0xFF, 32 * 4 * sizeof(uint32_t)));
            LAUNCH_KERNEL(ldmatrix_kernel, 1, 32, 0, 0, dev_out, dev_in, dev_rows, count, trans);
            CUDA_CHECK(cudaGetLastError());
            uint32_t out[32 * 4];
            CUDA_CHECK(cudaMemcpy(out, dev_out, sizeof out, cudaMemcpyDeviceToHost));
            int bad = 0;
            for (int lane = 0; lane < 32; lane++)
                for (int j = 0; j < 4; j++) {
                    int g = lane / 4, t = lane % 4;
                    /* M_j[i][c] = in[row_of_lane[8j + i]][c] */
                    const __half *row_lo = in + 8 * row_of_lane[8 * j + (trans ? 2 * t : g)];
                    const __half *row_hi = in + 8 * row_of_lane[8 * j + (trans ? 2 * t + 1 : g)];
                    uint32_t want = trans ? (uint32_t)f16_bits(row_hi[g]) << 16 | f16_bits(row_lo[g])
                                          : (uint32_t)f16_bits(row_hi[2 * t + 1]) << 16 |
                                                f16_bits(row_lo[2 * t]);
                    bad += out[4 * lane + j] != (j < count ? want : 0xFFFFFFFFu);
                }
            CHECK(bad == 0, "ldmatrix .x%d%s: %d of 128 registers differ from the documented layout "
                  "(or registers past .x%d were written)", count, trans ? ".trans" : "", bad, count);
        }
    cudaFree(dev_in);
    cudaFree(dev_rows);
    cudaFree(dev_out);
}

/* |got - want| within a tolerance for fp32 accumulation (and a tensor core's order), relative to
 * the sum of |terms|; a wrong fragment layout is off by about the value itself. */
static int near(double got, double want, double magnitude) {
    return fabs(got - want) <= 1e-4 * magnitude + 1e-6;
}

static void check_mma_tile(uint64_t *rng, int b_kmajor) {
    __half a[16 * 16], b[16 * 8];
    double a_x[16 * 16], b_x[16 * 8];
    float c[16 * 8];
    fill_random_f16(a, a_x, 16 * 16, rng);
    fill_random_f16(b, b_x, 16 * 8, rng);
    for (int i = 0; i < 16 * 8; i++) c[i] = 2.0f * next_uniform(rng) - 1.0f;
    __half *dev_a = (__half *)device_copy(a, sizeof a), *dev_b = (__half *)device_copy(b, sizeof b);
    float *dev_c = (float *)device_copy(c, sizeof c), *dev_d = (float *)device_poisoned(sizeof c);
    LAUNCH_KERNEL(mma_tile_kernel, 1, 32, 0, 0, dev_d, dev_a, dev_b, dev_c, b_kmajor);
    CUDA_CHECK(cudaGetLastError());
    float d[16 * 8];
    CUDA_CHECK(cudaMemcpy(d, dev_d, sizeof d, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 8; n++) {
            double want = c[8 * m + n], magnitude = fabs(want);
            for (int k = 0; k < 16; k++) {
                double bkn = b_kmajor ? b_x[8 * k + n] : b_x[16 * n + k];
                want += a_x[16 * m + k] * bkn;
                magnitude += fabs(a_x[16 * m + k] * bkn);
            }
            bad += !near(d[8 * m + n], want, magnitude);
        }
    CHECK(bad == 0, "mma 16x8x16 (B %s): %d of 128 outputs wrong", b_kmajor ? "k-major" : "n-major",
          bad);
    cudaFree(dev_a);
    cudaFree(dev_b);
    cudaFree(dev_c);
    cudaFree(dev_d);
}

static void check_mma_gemm64(uint64_t *rng) {
    const int n_a = GEMM_VALID_ROWS * GEMM_TILE, n_b = GEMM_TILE * GEMM_TILE;
    __half *a = (__half *)malloc(n_a * sizeof(__half)), *b = (__half *)malloc(n_b * sizeof(__half));
    double *a_x = (double *)malloc(n_a * sizeof(double));
    double *b_x = (double *)malloc(n_b * sizeof(double));
    float *d = (float *)malloc(n_b * sizeof(float));
    fill_random_f16(a, a_x, n_a, rng);
    fill_random_f16(b, b_x, n_b, rng);
    __half *dev_a = (__half *)device_copy(a, n_a * sizeof(__half));
    __half *dev_b = (__half *)device_copy(b, n_b * sizeof(__half));
    float *dev_d = (float *)device_poisoned(n_b * sizeof(float));
    LAUNCH_KERNEL(mma_gemm64_kernel, 1, GEMM_THREADS, 0, 0, dev_d, dev_a, GEMM_VALID_ROWS, dev_b);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaMemcpy(d, dev_d, n_b * sizeof(float), cudaMemcpyDeviceToHost));
    int bad = 0, bad_zero_rows = 0;
    for (int m = 0; m < GEMM_TILE; m++)
        for (int n = 0; n < GEMM_TILE; n++) {
            if (m >= GEMM_VALID_ROWS) { /* zero-filled rows of A give exact zeros */
                bad_zero_rows += d[GEMM_TILE * m + n] != 0.0f;
                continue;
            }
            double want = 0, magnitude = 0;
            for (int k = 0; k < GEMM_TILE; k++) {
                want += a_x[GEMM_TILE * m + k] * b_x[GEMM_TILE * k + n];
                magnitude += fabs(a_x[GEMM_TILE * m + k] * b_x[GEMM_TILE * k + n]);
            }
            bad += !near(d[GEMM_TILE * m + n], want, magnitude);
        }
    CHECK(bad == 0, "tiled 64x64x64 mma: %d of %d outputs wrong", bad, GEMM_VALID_ROWS * GEMM_TILE);
    CHECK(bad_zero_rows == 0, "tiled 64x64x64 mma: %d outputs of zero-filled rows are not 0",
          bad_zero_rows);
    cudaFree(dev_a);
    cudaFree(dev_b);
    cudaFree(dev_d);
    free(a);
    free(b);
    free(a_x);
    free(b_x);
    free(d);
}

int main(void) {
    if (gpt2_cuda_device_count() == 0) {
        printf("test_mma_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    uint64_t rng = (uint64_t)time(NULL) | 1; /* xorshift needs a nonzero state */
    printf("test_mma_gpu: seed %llu\n", (unsigned long long)rng);
    check_ldmatrix_layouts(&rng);
    check_mma_tile(&rng, 1);
    check_mma_tile(&rng, 0);
    check_mma_gemm64(&rng);
    return check_finish("test_mma_gpu");
}
