/*
 * CUDA's execution semantics, as our kernels rely on them, on a GPU and on the SIMT emulator.
 * Every expected value is computed here by plain C from the CUDA C++ Programming Guide's rules:
 *   - barriers: shared memory exchanged across __syncthreads, and its _count/_and/_or forms;
 *   - every shuffle (idx, up, down, xor) of every value type, widths 1 to 32, partial masks and
 *     two disjoint masks in one warp at once; ballot, any, all, __activemask, __reduce_*_sync;
 *   - atomics under contention on global and shared memory (sums that must be exact, counters,
 *     a CAS loop, half2 adds, min/max, exchange, inc);
 *   - dynamic shared memory, 1 KiB, 48 KiB and, with the opt-in attribute, 100 KiB;
 *   - 1D, 2D and 3D grids and blocks;
 *   - a captured CUDA graph replayed several times against the same work launched eagerly;
 *   - intrinsics: __fdiv_rn, __frcp_rn, __float2int_rn and __saturatef exact (ties to even),
 *     __expf, __logf, __fdividef and rsqrtf within CUDA's documented error bounds.
 * Exits 77 where there is neither a GPU nor the emulator.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_fp16.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "kernels/launch.h"
#include "tests/check.h"

#define FULL_MASK 0xffffffffu

/* A small deterministic generator for inputs (xorshift64*). */
static uint64_t rng_state;
static uint32_t next_u32(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}
static float next_float(float lo, float hi) { return lo + (hi - lo) * (float)(next_u32() >> 8) * 0x1p-24f; }

static void sync_and_check(const char *what) {
    cudaError_t launch = cudaGetLastError(), run = cudaDeviceSynchronize();
    CHECK(launch == cudaSuccess && run == cudaSuccess, "%s: %s / %s", what, cudaGetErrorString(launch),
          cudaGetErrorString(run));
}

static void *device_alloc(size_t bytes) {
    void *p;
    CUDA_CHECK(cudaMalloc(&p, bytes));
    return p;
}

/* ======================= barriers ======================= */

/* Two exchanges through shared memory, each behind a barrier: out[t] = 3 * in[(t + 37) % n] + 1
 * from the first, then + in[n - 1 - t] read back after the second. */
static __global__ void exchange_kernel(int *out /* [blocks][n] */, const int *in /* [blocks][n] */) {
    __shared__ int s[256];
    const int n = blockDim.x, t = threadIdx.x;
    const int *block_in = in + blockIdx.x * n;
    s[t] = 3 * block_in[t] + 1;
    __syncthreads();
    int v = s[(t + 37) % n];
    __syncthreads(); /* everyone has read s before it is overwritten */
    s[t] = block_in[t];
    __syncthreads();
    out[blockIdx.x * n + t] = v + s[n - 1 - t];
}

/* Block b votes with predicate pattern b % 4 (0: t % 3 == 0, 1: all, 2: none, 3: only t == 5). */
static __global__ void barrier_vote_kernel(int *out /* [blocks][3] */) {
    const int t = threadIdx.x, pattern = blockIdx.x % 4;
    const int p = pattern == 0 ? t % 3 == 0 : pattern == 1 ? 1 : pattern == 2 ? 0 : t == 5;
    const int count = __syncthreads_count(p), all = __syncthreads_and(p), any = __syncthreads_or(p);
    if (t == 0) {
        out[3 * blockIdx.x] = count;
        out[3 * blockIdx.x + 1] = all;
        out[3 * blockIdx.x + 2] = any;
    }
}

static void check_barriers(void) {
    const int blocks = 6, n = 256;
    int *host_in = (int *)malloc(blocks * n * sizeof(int)), *host_out = (int *)malloc(blocks * n * sizeof(int));
    for (int i = 0; i < blocks * n; i++) host_in[i] = (int)(next_u32() % 100000);
    int *in = (int *)device_alloc(blocks * n * sizeof(int)), *out = (int *)device_alloc(blocks * n * sizeof(int));
    CUDA_CHECK(cudaMemcpy(in, host_in, blocks * n * sizeof(int), cudaMemcpyHostToDevice));
    LAUNCH_KERNEL(exchange_kernel, blocks, n, 0, 0, out, in);
    sync_and_check("exchange_kernel");
    CUDA_CHECK(cudaMemcpy(host_out, out, blocks * n * sizeof(int), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int b = 0; b < blocks; b++)
        for (int t = 0; t < n; t++) {
            const int *x = host_in + b * n;
            bad += host_out[b * n + t] != 3 * x[(t + 37) % n] + 1 + x[n - 1 - t];
        }
    CHECK(bad == 0, "shared-memory exchange: %d wrong of %d", bad, blocks * n);

    const int vote_blocks = 8, threads = 96;
    int *votes = (int *)device_alloc(vote_blocks * 3 * sizeof(int)), host_votes[8 * 3];
    LAUNCH_KERNEL(barrier_vote_kernel, vote_blocks, threads, 0, 0, votes);
    sync_and_check("barrier_vote_kernel");
    CUDA_CHECK(cudaMemcpy(host_votes, votes, sizeof host_votes, cudaMemcpyDeviceToHost));
    const int expected_count[4] = {32, threads, 0, 1};
    for (int b = 0; b < vote_blocks; b++) {
        const int count = expected_count[b % 4];
        CHECK(host_votes[3 * b] == count && host_votes[3 * b + 1] == (count == threads) &&
                  host_votes[3 * b + 2] == (count > 0),
              "block %d: __syncthreads_count/and/or gave %d/%d/%d, expected %d/%d/%d", b,
              host_votes[3 * b], host_votes[3 * b + 1], host_votes[3 * b + 2], count, count == threads,
              count > 0);
    }
    cudaFree(in);
    cudaFree(out);
    cudaFree(votes);
    free(host_in);
    free(host_out);
}

/* ======================= shuffles ======================= */

enum { SHFL_IDX, SHFL_UP, SHFL_DOWN, SHFL_XOR, SHFL_MODES };

struct shuffle_case {
    int mode, operand, width;
    unsigned mask;
};

/* Lane l's value, of each shuffled type, encodes l + 1 so that the result names its source. */
template <typename T> static __device__ T lane_value(int lane);
template <> __device__ int lane_value<int>(int lane) { return -1000 * (lane + 1); }
template <> __device__ unsigned lane_value<unsigned>(int lane) { return 0x80000000u + lane + 1; }
template <> __device__ float lane_value<float>(int lane) { return 0.25f * (lane + 1); }
template <> __device__ double lane_value<double>(int lane) { return 1e100 * (lane + 1); }
template <> __device__ long long lane_value<long long>(int lane) { return -(0x100000001ll * (lane + 1)); }
template <> __device__ unsigned long long lane_value<unsigned long long>(int lane) {
    return 0x0123456700000000ull * (lane + 1) + (lane + 1);
}
template <> __device__ __half lane_value<__half>(int lane) { return __int2half_rn(lane + 1); }
template <> __device__ __half2 lane_value<__half2>(int lane) {
    return __halves2half2(__int2half_rn(lane + 1), __int2half_rn(-(lane + 1)));
}

/* The source lane + 1 a shuffled value names, or -1 for a value no lane holds. */
template <typename T> static __device__ int source_of(T v);
template <> __device__ int source_of<int>(int v) { return v % 1000 == 0 ? -v / 1000 : -1; }
template <> __device__ int source_of<unsigned>(unsigned v) { return (int)(v - 0x80000000u); }
template <> __device__ int source_of<float>(float v) { return (int)(v * 4.0f); }
template <> __device__ int source_of<double>(double v) { return (int)(v / 1e100 + 0.5); }
template <> __device__ int source_of<long long>(long long v) {
    return -v % 0x100000001ll == 0 ? (int)(-v / 0x100000001ll) : -1;
}
template <> __device__ int source_of<unsigned long long>(unsigned long long v) {
    const unsigned long long k = v & 0xffffffffull;
    return v == 0x0123456700000000ull * k + k ? (int)k : -1;
}
template <> __device__ int source_of<__half>(__half v) { return (int)__half2float(v); }
template <> __device__ int source_of<__half2>(__half2 v) {
    const float low = __low2float(v), high = __high2float(v);
    if (!(fabsf(low) <= 64.0f && fabsf(high) <= 64.0f)) return -1; /* the poison pattern (NaN) */
    return (int)high == -(int)low ? (int)low : -1;
}

/* One warp: for each case, the lanes in its mask shuffle; out[c][lane] = source lane + 1. */
template <typename T>
static __global__ void shuffle_kernel(int *out /* [cases][32] */, const shuffle_case *cases, int n_cases) {
    const int lane = threadIdx.x;
    for (int c = 0; c < n_cases; c++) {
        const shuffle_case k = cases[c];
        if (!(k.mask >> lane & 1)) continue;
        const T v = lane_value<T>(lane);
        T r = v;
        if (k.mode == SHFL_IDX) r = __shfl_sync(k.mask, v, k.operand, k.width);
        if (k.mode == SHFL_UP) r = __shfl_up_sync(k.mask, v, (unsigned)k.operand, k.width);
        if (k.mode == SHFL_DOWN) r = __shfl_down_sync(k.mask, v, (unsigned)k.operand, k.width);
        if (k.mode == SHFL_XOR) r = __shfl_xor_sync(k.mask, v, k.operand, k.width);
        out[32 * c + lane] = source_of<T>(r);
    }
}

/* The lane that lane `lane` reads, in the Programming Guide's words (operands 0 to 31). */
static int shuffle_source(const shuffle_case *k, int lane) {
    const int w = k->width, start = lane / w * w;
    switch (k->mode) {
    case SHFL_IDX: return start + k->operand % w;
    case SHFL_UP: return lane % w >= k->operand ? lane - k->operand : lane;
    case SHFL_DOWN: return lane % w + k->operand < w ? lane + k->operand : lane;
    default: return (lane ^ k->operand) < start + w ? lane ^ k->operand : lane;
    }
}

static int make_shuffle_cases(shuffle_case *cases) {
    const int widths[] = {32, 16, 8, 4, 2, 1}, operands[] = {0, 1, 3, 5, 16, 31};
    const unsigned masks[] = {FULL_MASK, 0x0000ffffu, 0xffff0000u, 0x55555555u, 0x0f0f0f0fu};
    int n = 0;
    for (int mode = 0; mode < SHFL_MODES; mode++)
        for (int w = 0; w < 6; w++)
            for (int o = 0; o < 6; o++)
                for (int m = 0; m < 5; m++) cases[n++] = {mode, operands[o], widths[w], masks[m]};
    return n;
}

template <typename T>
static void check_shuffles_of(const char *type, const shuffle_case *host_cases, int n,
                              const shuffle_case *cases, int *out, int *host_out) {
    CUDA_CHECK(cudaMemset(out, 0xff, (size_t)n * 32 * sizeof(int)));
    LAUNCH_KERNEL((shuffle_kernel<T>), 1, 32, 0, 0, out, cases, n);
    sync_and_check("shuffle_kernel");
    CUDA_CHECK(cudaMemcpy(host_out, out, (size_t)n * 32 * sizeof(int), cudaMemcpyDeviceToHost));
    int bad = 0, checked = 0;
    for (int c = 0; c < n; c++)
        for (int lane = 0; lane < 32; lane++) {
            const shuffle_case *k = &host_cases[c];
            if (!(k->mask >> lane & 1)) continue;
            const int source = shuffle_source(k, lane);
            if (!(k->mask >> source & 1)) continue; /* a source outside the mask is undefined */
            checked++;
            if (host_out[32 * c + lane] != source + 1 && bad++ < 5)
                fprintf(stderr, "%s shuffle mode %d operand %d width %d mask %08x lane %d: got source "
                        "%d, expected %d\n", type, k->mode, k->operand, k->width, k->mask, lane,
                        host_out[32 * c + lane] - 1, source);
        }
    CHECK(bad == 0 && checked > 0, "%s shuffles: %d wrong of %d", type, bad, checked);
}

/* Lanes 0-15 and 16-31 shuffle at once with two disjoint masks; out[lane] = partner's lane. */
static __global__ void split_mask_kernel(int *out /* [32] */) {
    const int lane = threadIdx.x;
    const unsigned mask = lane < 16 ? 0x0000ffffu : 0xffff0000u;
    out[lane] = __shfl_xor_sync(mask, lane, 1) + 100 * __shfl_sync(mask, lane, lane < 16 ? 15 : 16);
}

static void check_shuffles(void) {
    shuffle_case host_cases[SHFL_MODES * 6 * 6 * 5];
    const int n = make_shuffle_cases(host_cases);
    shuffle_case *cases = (shuffle_case *)device_alloc(sizeof host_cases);
    int *out = (int *)device_alloc((size_t)n * 32 * sizeof(int)), *host_out = (int *)malloc((size_t)n * 32 * sizeof(int));
    CUDA_CHECK(cudaMemcpy(cases, host_cases, sizeof host_cases, cudaMemcpyHostToDevice));
    check_shuffles_of<int>("int", host_cases, n, cases, out, host_out);
    check_shuffles_of<unsigned>("unsigned", host_cases, n, cases, out, host_out);
    check_shuffles_of<float>("float", host_cases, n, cases, out, host_out);
    check_shuffles_of<double>("double", host_cases, n, cases, out, host_out);
    check_shuffles_of<long long>("long long", host_cases, n, cases, out, host_out);
    check_shuffles_of<unsigned long long>("unsigned long long", host_cases, n, cases, out, host_out);
    check_shuffles_of<__half>("__half", host_cases, n, cases, out, host_out);
    check_shuffles_of<__half2>("__half2", host_cases, n, cases, out, host_out);

    LAUNCH_KERNEL(split_mask_kernel, 1, 32, 0, 0, out);
    sync_and_check("split_mask_kernel");
    CUDA_CHECK(cudaMemcpy(host_out, out, 32 * sizeof(int), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int lane = 0; lane < 32; lane++) bad += host_out[lane] != (lane ^ 1) + 100 * (lane < 16 ? 15 : 16);
    CHECK(bad == 0, "two disjoint shuffle masks in one warp: %d lanes wrong", bad);
    cudaFree(cases);
    cudaFree(out);
    free(host_out);
}

/* ======================= votes and warp reductions ======================= */

#define VOTE_PATTERNS 5
#define VOTE_MASKS 3

static __device__ int vote_predicate(int pattern, int lane) {
    switch (pattern) {
    case 0: return lane % 3 == 0;
    case 1: return 1;
    case 2: return 0;
    case 3: return lane == 17;
    default: return lane >= 8;
    }
}

static __device__ unsigned vote_mask(int m) {
    return m == 0 ? FULL_MASK : m == 1 ? 0x0000ffffu : 0xaaaaaaaau;
}

/* out[p][m][lane] = {ballot, any, all}; reduce[lane] = {add, min, max, and, or, xor, activemask}. */
static __global__ void vote_kernel(unsigned *out /* [patterns][masks][32][3] */,
                                   unsigned *reduce /* [32][7] */) {
    const int lane = threadIdx.x;
    for (int p = 0; p < VOTE_PATTERNS; p++)
        for (int m = 0; m < VOTE_MASKS; m++) {
            const unsigned mask = vote_mask(m);
            if (!(mask >> lane & 1)) continue;
            const int pred = vote_predicate(p, lane);
            unsigned *o = out + 3 * (32 * (VOTE_MASKS * p + m) + lane);
            o[0] = __ballot_sync(mask, pred);
            o[1] = (unsigned)__any_sync(mask, pred);
            o[2] = (unsigned)__all_sync(mask, pred);
        }
    const unsigned value = 1000u + 37u * (unsigned)lane * (unsigned)lane % 101u;
    unsigned *r = reduce + 7 * lane;
    r[0] = __reduce_add_sync(FULL_MASK, value);
    r[1] = (unsigned)__reduce_min_sync(FULL_MASK, (int)value - 1050);
    r[2] = __reduce_max_sync(FULL_MASK, value);
    r[3] = __reduce_and_sync(FULL_MASK, value);
    r[4] = __reduce_or_sync(FULL_MASK, value);
    r[5] = __reduce_xor_sync(FULL_MASK, value);
    r[6] = __activemask(); /* converged code: the whole warp */
}

static int host_vote_predicate(int pattern, int lane) {
    const int table[VOTE_PATTERNS] = {lane % 3 == 0, 1, 0, lane == 17, lane >= 8};
    return table[pattern];
}

static void check_votes(void) {
    const unsigned masks[VOTE_MASKS] = {FULL_MASK, 0x0000ffffu, 0xaaaaaaaau};
    const size_t vote_words = VOTE_PATTERNS * VOTE_MASKS * 32 * 3;
    unsigned *out = (unsigned *)device_alloc(vote_words * sizeof(unsigned));
    unsigned *reduce = (unsigned *)device_alloc(32 * 7 * sizeof(unsigned));
    unsigned host_out[VOTE_PATTERNS * VOTE_MASKS * 32 * 3], host_reduce[32 * 7];
    LAUNCH_KERNEL(vote_kernel, 1, 32, 0, 0, out, reduce);
    sync_and_check("vote_kernel");
    CUDA_CHECK(cudaMemcpy(host_out, out, sizeof host_out, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(host_reduce, reduce, sizeof host_reduce, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int p = 0; p < VOTE_PATTERNS; p++)
        for (int m = 0; m < VOTE_MASKS; m++) {
            unsigned ballot = 0;
            for (int lane = 0; lane < 32; lane++)
                if ((masks[m] >> lane & 1) && host_vote_predicate(p, lane)) ballot |= 1u << lane;
            for (int lane = 0; lane < 32; lane++) {
                if (!(masks[m] >> lane & 1)) continue;
                const unsigned *o = host_out + 3 * (32 * (VOTE_MASKS * p + m) + lane);
                bad += o[0] != ballot || o[1] != (ballot != 0) || o[2] != (ballot == masks[m]);
            }
        }
    CHECK(bad == 0, "ballot/any/all: %d lanes wrong", bad);
    unsigned sum = 0, max = 0, all_and = ~0u, any_or = 0, parity = 0;
    int min = 1 << 30;
    for (int lane = 0; lane < 32; lane++) {
        const unsigned value = 1000u + 37u * (unsigned)lane * (unsigned)lane % 101u;
        sum += value;
        min = (int)value - 1050 < min ? (int)value - 1050 : min;
        max = value > max ? value : max;
        all_and &= value;
        any_or |= value;
        parity ^= value;
    }
    const unsigned expected[7] = {sum, (unsigned)min, max, all_and, any_or, parity, FULL_MASK};
    bad = 0;
    for (int lane = 0; lane < 32; lane++)
        for (int i = 0; i < 7; i++) bad += host_reduce[7 * lane + i] != expected[i];
    CHECK(bad == 0, "__reduce_*_sync / __activemask: %d values wrong", bad);
    cudaFree(out);
    cudaFree(reduce);
}

/* ======================= atomics ======================= */

struct atomic_totals {
    float float_sum;          /* each thread adds t % 7: integer-valued, so the sum is exact */
    int int_sum;              /* each adds t - 100 */
    unsigned unsigned_sum;    /* each adds 3 */
    unsigned long long ull_sum; /* each adds 2^33 + t, by a CAS loop for odd threads */
    int int_max, int_min;     /* over t * 7919 % 10007 - 5000 */
    unsigned unsigned_max, unsigned_min;
    unsigned exchanged;       /* atomicExch of t + 1: the last writer's value */
    unsigned long long exchanged_sum; /* of the old values atomicExch returned */
    unsigned wrapped;         /* atomicInc with limit 999 */
    __half2 half_sums[8];     /* half_sums[t % 8] += (1, 0.5) */
};

static __device__ unsigned long long add_by_cas(unsigned long long *address, unsigned long long value) {
    unsigned long long old = *address, assumed;
    do {
        assumed = old;
        old = atomicCAS(address, assumed, assumed + value);
    } while (old != assumed);
    return old;
}

/* Every thread of the grid hits the same few words; per block, shared counters too. */
static __global__ void atomics_kernel(atomic_totals *totals, int *block_sums /* [blocks][2] */) {
    __shared__ int shared_int;
    __shared__ float shared_float;
    const unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
    if (threadIdx.x == 0) {
        shared_int = 0;
        shared_float = 0.0f;
    }
    __syncthreads();
    atomicAdd(&totals->float_sum, (float)(t % 7));
    atomicAdd(&totals->int_sum, (int)t - 100);
    atomicAdd(&totals->unsigned_sum, 3u);
    const unsigned long long big = (1ull << 33) + t;
    if (t % 2) add_by_cas(&totals->ull_sum, big);
    else atomicAdd(&totals->ull_sum, big);
    const int key = (int)(t * 7919u % 10007u) - 5000;
    atomicMax(&totals->int_max, key);
    atomicMin(&totals->int_min, key);
    atomicMax(&totals->unsigned_max, (unsigned)key + 5000u);
    atomicMin(&totals->unsigned_min, (unsigned)key + 5000u);
    atomicAdd(&totals->exchanged_sum, (unsigned long long)atomicExch(&totals->exchanged, t + 1));
    atomicInc(&totals->wrapped, 999u);
    atomicAdd(&totals->half_sums[t % 8], __halves2half2(__float2half(1.0f), __float2half(0.5f)));
    atomicAdd(&shared_int, (int)threadIdx.x);
    atomicAdd(&shared_float, 0.5f);
    __syncthreads();
    if (threadIdx.x == 0) {
        block_sums[2 * blockIdx.x] = shared_int;
        block_sums[2 * blockIdx.x + 1] = (int)shared_float;
    }
}

static void check_atomics(void) {
    const unsigned blocks = 64, threads = 256, n = blocks * threads;
    atomic_totals host = {};
    host.int_max = -(1 << 30);
    host.int_min = 1 << 30;
    host.unsigned_min = ~0u;
    atomic_totals *totals = (atomic_totals *)device_alloc(sizeof host);
    int *block_sums = (int *)device_alloc(blocks * 2 * sizeof(int)), host_block_sums[64 * 2];
    CUDA_CHECK(cudaMemcpy(totals, &host, sizeof host, cudaMemcpyHostToDevice));
    LAUNCH_KERNEL(atomics_kernel, blocks, threads, 0, 0, totals, block_sums);
    sync_and_check("atomics_kernel");
    CUDA_CHECK(cudaMemcpy(&host, totals, sizeof host, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(host_block_sums, block_sums, sizeof host_block_sums, cudaMemcpyDeviceToHost));

    double float_sum = 0;
    long long int_sum = 0;
    unsigned long long ull_sum = 0, ids = 0;
    int key_max = -(1 << 30), key_min = 1 << 30;
    for (unsigned t = 0; t < n; t++) {
        float_sum += t % 7;
        int_sum += (int)t - 100;
        ull_sum += (1ull << 33) + t;
        const int key = (int)(t * 7919u % 10007u) - 5000;
        key_max = key > key_max ? key : key_max;
        key_min = key < key_min ? key : key_min;
        ids += t + 1;
    }
    CHECK(host.float_sum == (float)float_sum, "float atomicAdd: %.1f, expected %.1f", host.float_sum, float_sum);
    CHECK(host.int_sum == (int)int_sum, "int atomicAdd: %d, expected %lld", host.int_sum, int_sum);
    CHECK(host.unsigned_sum == 3 * n, "unsigned atomicAdd: %u, expected %u", host.unsigned_sum, 3 * n);
    CHECK(host.ull_sum == ull_sum, "unsigned long long atomicAdd and CAS loop: %llu, expected %llu",
          host.ull_sum, ull_sum);
    CHECK(host.int_max == key_max && host.int_min == key_min, "int atomicMax/Min: %d %d, expected %d %d",
          host.int_max, host.int_min, key_max, key_min);
    CHECK(host.unsigned_max == (unsigned)key_max + 5000u && host.unsigned_min == (unsigned)key_min + 5000u,
          "unsigned atomicMax/Min: %u %u", host.unsigned_max, host.unsigned_min);
    /* Each exchange returns the value it replaced: those, plus the last one left, are 0..n once. */
    CHECK(host.exchanged >= 1 && host.exchanged <= n && host.exchanged_sum + host.exchanged == ids,
          "atomicExch: last %u, returned values sum to %llu, expected %llu", host.exchanged,
          host.exchanged_sum, ids - host.exchanged);
    CHECK(host.wrapped == n % 1000, "atomicInc(999): %u, expected %u", host.wrapped, n % 1000);
    int bad = 0;
    for (int i = 0; i < 8; i++)
        bad += __low2float(host.half_sums[i]) != n / 8 || __high2float(host.half_sums[i]) != n / 16;
    CHECK(bad == 0, "half2 atomicAdd: %d of 8 sums wrong (%g, %g)", bad, __low2float(host.half_sums[0]),
          __high2float(host.half_sums[0]));
    bad = 0;
    for (unsigned b = 0; b < blocks; b++)
        bad += host_block_sums[2 * b] != (int)(threads * (threads - 1) / 2) ||
               host_block_sums[2 * b + 1] != (int)threads / 2;
    CHECK(bad == 0, "shared-memory atomics: %d of %u blocks wrong", bad, blocks);
    cudaFree(totals);
    cudaFree(block_sums);
}

/* ======================= dynamic shared memory ======================= */

/* n floats of dynamic shared memory: filled, then read back reversed after a barrier. */
static __global__ void dynamic_shared_kernel(float *out /* [blocks][n] */, int n) {
    DYNAMIC_SHARED(float, buffer);
    for (int i = threadIdx.x; i < n; i += blockDim.x) buffer[i] = (float)(blockIdx.x * n + i);
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) out[blockIdx.x * n + i] = buffer[n - 1 - i];
}

/* 1 KiB and 48 KiB (the default limit), then 100 KiB once the kernel has opted in. */
static void check_dynamic_shared(void) {
    const int sizes[] = {1024, 48 * 1024, 100 * 1024}, blocks = 3;
    for (int s = 0; s < 3; s++) {
        if (sizes[s] > 48 * 1024)
            CUDA_CHECK(cudaFuncSetAttribute((const void *)dynamic_shared_kernel,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize, sizes[s]));
        const int n = sizes[s] / (int)sizeof(float);
        float *out = (float *)device_alloc((size_t)blocks * n * sizeof(float));
        float *host_out = (float *)malloc((size_t)blocks * n * sizeof(float));
        LAUNCH_KERNEL(dynamic_shared_kernel, blocks, 256, (size_t)sizes[s], 0, out, n);
        sync_and_check("dynamic_shared_kernel");
        CUDA_CHECK(cudaMemcpy(host_out, out, (size_t)blocks * n * sizeof(float), cudaMemcpyDeviceToHost));
        int bad = 0;
        for (int b = 0; b < blocks; b++)
            for (int i = 0; i < n; i++) bad += host_out[b * n + i] != (float)(b * n + n - 1 - i);
        CHECK(bad == 0, "%d bytes of dynamic shared memory: %d wrong", sizes[s], bad);
        cudaFree(out);
        free(host_out);
    }
}

/* ======================= grids and blocks in 1 to 3 dimensions ======================= */

/* Each thread writes its coordinates, and the launch's dimensions, into its own slot. */
static __global__ void coordinates_kernel(uint4 *out /* [grid threads] */) {
    const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const unsigned per_block = blockDim.x * blockDim.y * blockDim.z;
    out[block * per_block + thread] = make_uint4(
        blockIdx.x | blockIdx.y << 8 | blockIdx.z << 16, threadIdx.x | threadIdx.y << 11 | threadIdx.z << 22,
        gridDim.x | gridDim.y << 8 | gridDim.z << 16, blockDim.x | blockDim.y << 11 | blockDim.z << 22);
}

static void check_dimensions(void) {
    const dim3 shapes[][2] = {{dim3(7), dim3(1024)},          {dim3(3, 5), dim3(16, 8)},
                              {dim3(2, 3, 4), dim3(4, 3, 2)}, {dim3(1, 1, 3), dim3(1, 1, 64)},
                              {dim3(5, 1, 2), dim3(1, 33)}};
    for (int s = 0; s < 5; s++) {
        const dim3 g = shapes[s][0], b = shapes[s][1];
        const unsigned per_block = b.x * b.y * b.z, n = g.x * g.y * g.z * per_block;
        uint4 *out = (uint4 *)device_alloc(n * sizeof(uint4)), *host_out = (uint4 *)malloc(n * sizeof(uint4));
        CUDA_CHECK(cudaMemset(out, 0xff, n * sizeof(uint4)));
        LAUNCH_KERNEL(coordinates_kernel, g, b, 0, 0, out);
        sync_and_check("coordinates_kernel");
        CUDA_CHECK(cudaMemcpy(host_out, out, n * sizeof(uint4), cudaMemcpyDeviceToHost));
        int bad = 0;
        for (unsigned bz = 0; bz < g.z; bz++)
            for (unsigned by = 0; by < g.y; by++)
                for (unsigned bx = 0; bx < g.x; bx++)
                    for (unsigned tz = 0; tz < b.z; tz++)
                        for (unsigned ty = 0; ty < b.y; ty++)
                            for (unsigned tx = 0; tx < b.x; tx++) {
                                const unsigned block = bx + g.x * (by + g.y * bz);
                                const uint4 v = host_out[block * per_block + tx + b.x * (ty + b.y * tz)];
                                bad += v.x != (bx | by << 8 | bz << 16) || v.y != (tx | ty << 11 | tz << 22) ||
                                       v.z != (g.x | g.y << 8 | g.z << 16) ||
                                       v.w != (b.x | b.y << 11 | b.z << 22);
                            }
        CHECK(bad == 0, "grid (%u,%u,%u) x block (%u,%u,%u): %d threads saw wrong coordinates", g.x,
              g.y, g.z, b.x, b.y, b.z, bad);
        cudaFree(out);
        free(host_out);
    }
}

/* ======================= CUDA graphs ======================= */

/* x[i] = 2 x[i] + i, then one block sums x (warp shuffles and a barrier) into total[round]. */
static __global__ void affine_kernel(int *x /* [n] */, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = 2 * x[i] + i;
}

static __global__ void sum_kernel(long long *total /* [1] */, const int *x /* [n] */, int n) {
    __shared__ long long warp_sums[32];
    long long v = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) v += x[i];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(FULL_MASK, v, offset);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        long long sum = 0;
        for (unsigned w = 0; w < blockDim.x / 32; w++) sum += warp_sums[w];
        *total += sum;
    }
}

/* One step: reset a scratch copy, transform x, copy it, and accumulate its sum. */
static void graph_step(cudaStream_t stream, int *x, int *copy, long long *total, int n) {
    CUDA_CHECK(cudaMemsetAsync(copy, 0, n * sizeof(int), stream));
    LAUNCH_KERNEL(affine_kernel, CEIL_DIV(n, 128), 128, 0, stream, x, n);
    CUDA_CHECK(cudaMemcpyAsync(copy, x, n * sizeof(int), cudaMemcpyDeviceToDevice, stream));
    LAUNCH_KERNEL(sum_kernel, 1, 256, 0, stream, total, copy, n);
}

static void check_graphs(void) {
    const int n = 3000, replays = 4;
    int *host_x = (int *)malloc(n * sizeof(int)), *host_result = (int *)malloc(n * sizeof(int));
    for (int i = 0; i < n; i++) host_x[i] = (int)(next_u32() % 1000);
    int *x = (int *)device_alloc(n * sizeof(int)), *copy = (int *)device_alloc(n * sizeof(int));
    long long *total = (long long *)device_alloc(sizeof(long long)), zero = 0, graph_total, eager_total;
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

    /* Eager: `replays` steps. */
    CUDA_CHECK(cudaMemcpy(x, host_x, n * sizeof(int), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(total, &zero, sizeof zero, cudaMemcpyHostToDevice));
    for (int r = 0; r < replays; r++) graph_step(stream, x, copy, total, n);
    CUDA_CHECK(cudaStreamSynchronize(stream));
    CUDA_CHECK(cudaMemcpy(host_result, x, n * sizeof(int), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(&eager_total, total, sizeof eager_total, cudaMemcpyDeviceToHost));

    /* Captured once, replayed `replays` times; nothing runs while capturing. */
    CUDA_CHECK(cudaMemcpy(x, host_x, n * sizeof(int), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(total, &zero, sizeof zero, cudaMemcpyHostToDevice));
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    cudaStreamCaptureStatus status;
    CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
    CHECK(status == cudaStreamCaptureStatusActive, "the stream is not capturing");
    graph_step(stream, x, copy, total, n);
    CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    size_t nodes = 0;
    CUDA_CHECK(cudaGraphGetNodes(graph, NULL, &nodes));
    CHECK(nodes == 4, "the graph has %zu nodes, expected 4 (memset, kernel, memcpy, kernel)", nodes);
    CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    CUDA_CHECK(cudaMemcpy(&graph_total, total, sizeof graph_total, cudaMemcpyDeviceToHost));
    CHECK(graph_total == 0, "captured work ran during the capture");
    for (int r = 0; r < replays; r++) CUDA_CHECK(cudaGraphLaunch(exec, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    int *graph_x = (int *)malloc(n * sizeof(int));
    CUDA_CHECK(cudaMemcpy(graph_x, x, n * sizeof(int), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(&graph_total, total, sizeof graph_total, cudaMemcpyDeviceToHost));

    /* Both against plain C. */
    long long expected_total = 0;
    int bad_eager = 0, bad_graph = 0;
    for (int i = 0; i < n; i++) {
        long long v = host_x[i];
        for (int r = 0; r < replays; r++) {
            v = 2 * v + i;
            expected_total += v;
        }
        bad_eager += host_result[i] != (int)v;
        bad_graph += graph_x[i] != (int)v;
    }
    CHECK(bad_eager == 0 && eager_total == expected_total, "eager steps: %d wrong, total %lld vs %lld",
          bad_eager, eager_total, expected_total);
    CHECK(bad_graph == 0 && graph_total == expected_total, "graph replays: %d wrong, total %lld vs %lld",
          bad_graph, graph_total, expected_total);
    CUDA_CHECK(cudaGraphExecDestroy(exec));
    CUDA_CHECK(cudaGraphDestroy(graph));
    CUDA_CHECK(cudaStreamDestroy(stream));
    cudaFree(x);
    cudaFree(copy);
    cudaFree(total);
    free(host_x);
    free(host_result);
    free(graph_x);
}

/* ======================= intrinsics ======================= */

enum { I_EXPF, I_LOGF, I_FDIVIDEF, I_RSQRTF, I_FDIV_RN, I_FRCP_RN, I_SATURATEF, I_FLOAT2INT_RN, I_COUNT };

static __global__ void intrinsics_kernel(float *out /* [I_COUNT][n] */, const float *x /* [n] */,
                                         const float *y /* [n] */, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[I_EXPF * n + i] = __expf(x[i]);
    out[I_LOGF * n + i] = __logf(fabsf(x[i]));
    out[I_FDIVIDEF * n + i] = __fdividef(x[i], y[i]);
    out[I_RSQRTF * n + i] = rsqrtf(fabsf(y[i]));
    out[I_FDIV_RN * n + i] = __fdiv_rn(x[i], y[i]);
    out[I_FRCP_RN * n + i] = __frcp_rn(y[i]);
    out[I_SATURATEF * n + i] = __saturatef(x[i]);
    out[I_FLOAT2INT_RN * n + i] = __int_as_float(__float2int_rn(x[i])); /* the int's bits */
}

/* |got - exact| in units of the float ulp at `exact`. */
static double ulp_error(float got, double exact) {
    int e;
    frexp(exact, &e);
    const double ulp = ldexp(1.0, (e - 1 > -126 ? e - 1 : -126) - 23);
    return fabs((double)got - exact) / ulp;
}

/* Round to nearest integer, ties to even, saturating to int as cvt.rni.s32.f32 does. */
static double round_half_even(double v) {
    if (v >= 2147483647.0) return 2147483647.0;
    if (v <= -2147483648.0) return -2147483648.0;
    const double f = floor(v), frac = v - f;
    if (frac > 0.5 || (frac == 0.5 && fmod(f, 2.0) != 0.0)) return f + 1;
    return f;
}

static void check_intrinsics(void) {
    const int n = 20000;
    float *host_x = (float *)malloc(n * sizeof(float)), *host_y = (float *)malloc(n * sizeof(float));
    float *host_out = (float *)malloc((size_t)I_COUNT * n * sizeof(float));
    const float ties[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f, -4.5f, 0.49999997f, 8388609.0f,
                          1e10f, -1e10f, 2147483520.0f};
    const int n_ties = (int)(sizeof ties / sizeof ties[0]);
    for (int i = 0; i < n; i++) {
        host_x[i] = i < n_ties ? ties[i] : i % 2 ? next_float(-80.0f, 80.0f) : next_float(-3.0f, 3.0f);
        host_y[i] = (next_u32() % 2 ? 1.0f : -1.0f) * ldexpf(next_float(1.0f, 2.0f), (int)(next_u32() % 200) - 100);
    }
    host_y[0] = 0x1.8p126f; /* __fdividef's documented zone: 2^126 < |y| < 2^128 gives 0 */
    host_y[1] = -0x1.8p127f;
    float *x = (float *)device_alloc(n * sizeof(float)), *y = (float *)device_alloc(n * sizeof(float));
    float *out = (float *)device_alloc((size_t)I_COUNT * n * sizeof(float));
    CUDA_CHECK(cudaMemcpy(x, host_x, n * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(y, host_y, n * sizeof(float), cudaMemcpyHostToDevice));
    LAUNCH_KERNEL(intrinsics_kernel, CEIL_DIV(n, 256), 256, 0, 0, out, x, y, n);
    sync_and_check("intrinsics_kernel");
    CUDA_CHECK(cudaMemcpy(host_out, out, (size_t)I_COUNT * n * sizeof(float), cudaMemcpyDeviceToHost));

    int bad[I_COUNT] = {0};
    double worst_exp = 0;
    for (int i = 0; i < n; i++) {
        const double xd = host_x[i], yd = host_y[i];
        const float *o = host_out + i;
        /* Bounds: CUDA C++ Programming Guide, "Intrinsic Functions" and "Standard Functions". */
        if (i >= n_ties && fabs(xd) <= 80.0) {
            const double err = ulp_error(o[I_EXPF * n], exp(xd));
            worst_exp = err > worst_exp ? err : worst_exp;
            bad[I_EXPF] += err > 2.0 + floor(fabs(1.173 * xd));
        }
        const double ax = fabs(xd);
        if (ax >= 0x1p-126) {
            const double err = fabs((double)o[I_LOGF * n] - log(ax));
            bad[I_LOGF] += ax >= 0.5 && ax <= 2.0 ? err > exp2(-21.41) : ulp_error(o[I_LOGF * n], log(ax)) > 3.0;
        }
        if (fabs(yd) >= 0x1p-126 && fabs(yd) <= 0x1p126 && fabs(xd / yd) <= FLT_MAX)
            bad[I_FDIVIDEF] += ulp_error(o[I_FDIVIDEF * n], xd / yd) > 2.0; /* an overflow is inf */
        else if (fabs(yd) > 0x1p126)
            bad[I_FDIVIDEF] += o[I_FDIVIDEF * n] != 0.0f;
        bad[I_RSQRTF] += ulp_error(o[I_RSQRTF * n], 1.0 / sqrt(fabs(yd))) > 2.0;
        /* Exactly rounded: double holds the exact quotient to more than twice float's precision,
         * so rounding it to float gives the correctly rounded result. */
        bad[I_FDIV_RN] += o[I_FDIV_RN * n] != (float)(xd / yd);
        bad[I_FRCP_RN] += o[I_FRCP_RN * n] != (float)(1.0 / yd);
        bad[I_SATURATEF] += o[I_SATURATEF * n] != (float)(xd < 0 ? 0 : xd > 1 ? 1 : xd);
        int rounded;
        memcpy(&rounded, &o[I_FLOAT2INT_RN * n], sizeof rounded);
        bad[I_FLOAT2INT_RN] += rounded != (int)round_half_even(xd);
    }
    const char *names[I_COUNT] = {"__expf", "__logf", "__fdividef", "rsqrtf", "__fdiv_rn", "__frcp_rn",
                                  "__saturatef", "__float2int_rn"};
    for (int k = 0; k < I_COUNT; k++) CHECK(bad[k] == 0, "%s: %d of %d results out of bounds", names[k], bad[k], n);
    printf("test_simt_gpu: worst __expf error %.2f ulp\n", worst_exp);
    cudaFree(x);
    cudaFree(y);
    cudaFree(out);
    free(host_x);
    free(host_y);
    free(host_out);
}

int main(void) {
    if (gpt2_cuda_device_count() == 0) {
        printf("test_simt_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    const char *seed_text = getenv("GPT2_TEST_SEED");
    rng_state = (seed_text ? strtoull(seed_text, NULL, 10) : (uint64_t)time(NULL)) | 1;
    printf("test_simt_gpu: seed %llu (GPT2_TEST_SEED reproduces it)\n", (unsigned long long)rng_state);
    check_barriers();
    check_shuffles();
    check_votes();
    check_atomics();
    check_dynamic_shared();
    check_dimensions();
    check_graphs();
    check_intrinsics();
    return check_finish("test_simt_gpu");
}
