/*
 * The SIMT emulator's loud faults, its race shaker and its poison (emulation build only: on a GPU
 * most of these kernels hang or corrupt memory).
 *
 * Each case runs in a forked child with its own GPT2_EMU_SHAKE_SEED; the parent never touches the
 * emulator. It checks how the child ended and what it printed on stderr, within a time limit, so
 * that a hang fails the test instead of stalling it:
 *   - a divergent barrier, mismatched barrier forms, and warp collectives whose mask names a lane
 *     that exited, waits elsewhere, does not exist or is not the caller: an error naming the
 *     kernel and the block, a non-zero exit, no hang;
 *   - launches a GPU refuses (too many threads, a block or grid dimension over its limit, a
 *     zero-sized grid, dynamic shared memory over the limit with and without the opt-in
 *     attribute): the launch error from cudaGetLastError, a line naming the kernel, no run;
 *   - a thread's stack overflow, a bad pointer and a dynamic shared memory overrun in a kernel:
 *     SIGSEGV, after a line naming the kernel;
 *   - copies and frees outside the allocation table, and the capture rules of CUDA graphs;
 *   - the race shaker: a kernel missing a __syncthreads, one missing a __syncwarp, and one that
 *     leans on a shuffle where a __syncthreads belongs are right in thread order and wrong under
 *     fixed seeds; their fixed twins are right under 20 seeds;
 *   - fresh allocations and dynamic shared memory read as the poison pattern 0x7FFF.
 */
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda_check.h"
#include "kernels/launch.h"
#include "tests/check.h"
#include "tests/child_case.h"

/* ---- running a case in a child ---- */

#define CASE_SECONDS 60 /* far more than any case needs: past it, the child is hung */

typedef child_outcome outcome;

/* Runs body() in a child (its return value is the exit code) with GPT2_EMU_SHAKE_SEED=seed. */
static outcome run_case(int (*body)(void), const char *seed) {
    outcome o;
    child_case_run(&o, body, seed, CASE_SECONDS);
    return o;
}

/* A case that must stop the run: a non-zero exit (or `signal`), and stderr naming each of `words`. */
static void expect_fault(const char *name, int (*body)(void), int signal, const char *const *words) {
    const outcome o = run_case(body, "0");
    CHECK(o.finished, "%s: the child hung (killed after %d s)", name, CASE_SECONDS);
    if (signal != 0)
        CHECK(o.signal == signal, "%s: ended with signal %d, exit code %d; expected signal %d", name,
              o.signal, o.exit_code, signal);
    else
        CHECK(o.exit_code > 0, "%s: exit code %d (signal %d), expected a failure", name, o.exit_code, o.signal);
    for (; *words != NULL; words++)
        CHECK(strstr(o.err, *words) != NULL, "%s: stderr does not say \"%s\":\n%s", name, *words, o.err);
}

/* A case whose body checks itself: exit code 0, and stderr naming each of `words`. */
static void expect_pass(const char *name, int (*body)(void), const char *const *words) {
    const outcome o = run_case(body, "0");
    CHECK(o.finished && o.exit_code == 0, "%s: exit code %d (signal %d):\n%s", name, o.exit_code,
          o.signal, o.err);
    for (; *words != NULL; words++)
        CHECK(strstr(o.err, *words) != NULL, "%s: stderr does not say \"%s\":\n%s", name, *words, o.err);
}

static int *device_ints(size_t n) {
    int *p;
    CUDA_CHECK(cudaMalloc((void **)&p, n * sizeof(int)));
    CUDA_CHECK(cudaMemset(p, 0, n * sizeof(int)));
    return p;
}

/* ---- barriers and warps that a GPU would hang on ---- */

/* Threads 16.. return; the rest wait at a barrier they can never pass. */
static __global__ void divergent_barrier_kernel(int *out) {
    if (threadIdx.x >= 16) return;
    __syncthreads();
    out[threadIdx.x] = 1;
}

/* Warp 0 waits at __syncthreads(), warp 1 at __syncthreads_count(). */
static __global__ void mismatched_barrier_kernel(int *out) {
    if (threadIdx.x < 32) __syncthreads();
    else out[0] = __syncthreads_count(1);
}

/* Lanes 0-15 exit; lanes 16-31 shuffle with the full mask. */
static __global__ void shuffle_exited_kernel(int *out) {
    if (threadIdx.x < 16) return;
    out[threadIdx.x] = __shfl_sync(0xffffffffu, (int)threadIdx.x, 0);
}

/* Lanes 0-15 wait at __syncwarp for lanes 16-31, which wait at __syncthreads. */
static __global__ void warp_elsewhere_kernel(int *out) {
    if (threadIdx.x < 16) __syncwarp();
    else __syncthreads();
    out[threadIdx.x] = 1;
}

/* Lane 1 shuffles with a mask that names only lane 0. */
static __global__ void mask_without_caller_kernel(int *out) {
    if (threadIdx.x == 1) out[0] = __shfl_sync(0x1u, 5, 0);
}

/* A block of 48 threads: warp 1 has 16 lanes, but shuffles with the full mask. */
static __global__ void missing_lanes_kernel(int *out) {
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 1);
}

static int run_divergent_barrier(void) {
    LAUNCH_KERNEL(divergent_barrier_kernel, 2, 64, 0, 0, device_ints(64));
    return cudaDeviceSynchronize() == cudaSuccess ? 0 : 2;
}
static int run_mismatched_barrier(void) {
    LAUNCH_KERNEL(mismatched_barrier_kernel, 1, 64, 0, 0, device_ints(1));
    return 0;
}
static int run_shuffle_exited(void) {
    LAUNCH_KERNEL(shuffle_exited_kernel, 1, 32, 0, 0, device_ints(32));
    return 0;
}
static int run_warp_elsewhere(void) {
    LAUNCH_KERNEL(warp_elsewhere_kernel, 1, 32, 0, 0, device_ints(32));
    return 0;
}
static int run_mask_without_caller(void) {
    LAUNCH_KERNEL(mask_without_caller_kernel, 1, 32, 0, 0, device_ints(1));
    return 0;
}
static int run_missing_lanes(void) {
    LAUNCH_KERNEL(missing_lanes_kernel, 1, 48, 0, 0, device_ints(48));
    return 0;
}

static void check_hangs_become_faults(void) {
    const char *divergent[] = {"kernel divergent_barrier_kernel, block (", "divergent barrier",
                               "16 of 64 threads wait at __syncthreads()", NULL};
    expect_fault("divergent barrier", run_divergent_barrier, 0, divergent);
    const char *mismatched[] = {"kernel mismatched_barrier_kernel, block (0,0,0)", "__syncthreads", NULL};
    expect_fault("mismatched barriers", run_mismatched_barrier, 0, mismatched);
    const char *exited[] = {"kernel shuffle_exited_kernel, block (0,0,0)", "__shfl_sync", "has exited", NULL};
    expect_fault("shuffle with exited lanes", run_shuffle_exited, 0, exited);
    const char *elsewhere[] = {"kernel warp_elsewhere_kernel, block (0,0,0)", "deadlock",
                               "__syncwarp (mask 0xffffffff)", "waits at __syncthreads()", NULL};
    expect_fault("warp waits elsewhere", run_warp_elsewhere, 0, elsewhere);
    const char *caller[] = {"kernel mask_without_caller_kernel", "does not name the calling lane 1", NULL};
    expect_fault("mask without the caller", run_mask_without_caller, 0, caller);
    const char *missing[] = {"kernel missing_lanes_kernel", "does not exist (the block has 48 threads)", NULL};
    expect_fault("mask with missing lanes", run_missing_lanes, 0, missing);
}

/* ---- launches a GPU refuses ---- */

static __global__ void config_kernel(int *ran) { *ran = 1; }

/* Launches config_kernel as given; returns whether the launch error was `expected` (then
 * cleared by cudaGetLastError) and the kernel ran exactly when it should have. */
static bool launch_gives(dim3 grid, dim3 block, size_t shared, cudaError_t expected) {
    int *ran = device_ints(1), host_ran = 0;
    LAUNCH_KERNEL(config_kernel, grid, block, shared, 0, ran);
    const cudaError_t peeked = cudaPeekAtLastError(), error = cudaGetLastError(), after = cudaGetLastError();
    CUDA_CHECK(cudaMemcpy(&host_ran, ran, sizeof host_ran, cudaMemcpyDeviceToHost));
    cudaFree(ran);
    const bool ok = peeked == expected && error == expected && after == cudaSuccess &&
                    host_ran == (expected == cudaSuccess);
    if (!ok)
        fprintf(stderr, "launch (%u,%u,%u) x (%u,%u,%u), %zu bytes: error %s, expected %s, ran %d\n",
                grid.x, grid.y, grid.z, block.x, block.y, block.z, shared, cudaGetErrorName(error),
                cudaGetErrorName(expected), host_ran);
    return ok;
}

static int run_bad_launches(void) {
    const void *kernel = (const void *)config_kernel;
    bool ok = launch_gives(1, 1025, 0, cudaErrorInvalidConfiguration);
    ok &= launch_gives(1, dim3(1, 1, 65), 0, cudaErrorInvalidConfiguration);
    ok &= launch_gives(0, 32, 0, cudaErrorInvalidConfiguration);
    ok &= launch_gives(dim3(1, 65536), 32, 0, cudaErrorInvalidConfiguration);
    ok &= launch_gives(1, dim3(32, 33), 0, cudaErrorInvalidConfiguration); /* 1056 threads */
    ok &= launch_gives(1, 1024, 48 * 1024, cudaSuccess);
    ok &= launch_gives(1, 32, 48 * 1024 + 1, cudaErrorInvalidValue);
    ok &= cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024) == cudaSuccess;
    ok &= launch_gives(1, 32, 100 * 1024, cudaSuccess);
    ok &= launch_gives(1, 32, 100 * 1024 + 16, cudaErrorInvalidValue);
    ok &= cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 * 1024) ==
          cudaErrorInvalidValue;
    ok &= cudaGetLastError() == cudaErrorInvalidValue && cudaGetLastError() == cudaSuccess;
    return ok ? 0 : 1;
}

static void check_bad_launches(void) {
    const char *lines[] = {"launch of config_kernel (grid (1,1,1), block (1025,1,1)",
                           "block dimension x is 1025, over its limit of 1024",
                           "block dimension z is 65, over its limit of 64", "a zero-sized grid or block",
                           "grid dimension y is 65536", "1056 threads per block",
                           "49153 bytes of dynamic shared memory, over the kernel's limit of 49152",
                           "102416 bytes of dynamic shared memory, over the kernel's limit of 102400",
                           "over the opt-in maximum of 232448", NULL};
    expect_pass("launches a GPU refuses", run_bad_launches, lines);
}

/* ---- memory faults inside kernels ---- */

static __device__ __attribute__((noinline)) int deep(int depth) {
    volatile char frame[4096];
    frame[depth % 4096] = (char)depth;
    return depth == 0 ? 0 : deep(depth - 1) + frame[depth % 4096];
}

static __global__ void recursion_kernel(int *out, int depth) { out[threadIdx.x] = deep(depth); }

static __global__ void bad_pointer_kernel(int *out) { out[threadIdx.x + (1 << 28)] = 1; }

/* n floats of dynamic shared memory, and one more written past them. */
static __global__ void shared_overrun_kernel(int n) {
    DYNAMIC_SHARED(float, buffer);
    buffer[n] = 1.0f;
}

static int run_stack_overflow(void) {
    LAUNCH_KERNEL(recursion_kernel, 1, 4, 0, 0, device_ints(4), 200); /* 800 KiB of frames */
    return cudaDeviceSynchronize() == cudaSuccess ? 0 : 2;
}
static int run_bad_pointer(void) {
    int *out = device_ints(32);
    LAUNCH_KERNEL(bad_pointer_kernel, 1, 32, 0, 0, out);
    return 0;
}
static int run_shared_overrun(void) {
    LAUNCH_KERNEL(shared_overrun_kernel, 1, 1, 1024 * sizeof(float), 0, 1024);
    return 0;
}

static void check_memory_faults(void) {
    const char *overflow[] = {"kernel recursion_kernel, block (0,0,0), thread (", "stack overflowed", NULL};
    expect_fault("stack overflow", run_stack_overflow, SIGSEGV, overflow);
    const char *pointer[] = {"kernel bad_pointer_kernel, block (0,0,0)", "invalid memory access", NULL};
    expect_fault("bad pointer", run_bad_pointer, SIGSEGV, pointer);
    const char *overrun[] = {"kernel shared_overrun_kernel", "past the end of the block's dynamic shared memory", NULL};
    expect_fault("dynamic shared memory overrun", run_shared_overrun, SIGSEGV, overrun);
}

/* ---- the runtime's checks: the allocation table and the capture rules ---- */

static int run_bad_copies(void) {
    char *p, host[64];
    CUDA_CHECK(cudaMalloc((void **)&p, 32));
    bool ok = cudaMemcpy(host, p, 33, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue;
    ok &= cudaMemcpy(p + 16, host, 16, cudaMemcpyHostToDevice) == cudaSuccess;
    ok &= cudaMemset(host, 0, 8) == cudaErrorInvalidValue;
    ok &= cudaFree(p + 1) == cudaErrorInvalidValue;
    ok &= cudaFree(p) == cudaSuccess;
    ok &= cudaFree(p) == cudaErrorInvalidValue; /* a double free */
    ok &= cudaGetLastError() == cudaErrorInvalidValue && cudaGetLastError() == cudaSuccess;
    return ok ? 0 : 1;
}

static int run_capture_rules(void) {
    cudaStream_t blocking, nonblocking;
    cudaGraph_t graph;
    void *p;
    CUDA_CHECK(cudaStreamCreate(&blocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&nonblocking, cudaStreamNonBlocking));
    int *dev = device_ints(4), host[4] = {0};
    /* An unsafe call during a global capture invalidates it. */
    CUDA_CHECK(cudaStreamBeginCapture(nonblocking, cudaStreamCaptureModeGlobal));
    bool ok = cudaMalloc(&p, 64) == cudaErrorStreamCaptureUnsupported;
    ok &= cudaStreamEndCapture(nonblocking, &graph) == cudaErrorStreamCaptureInvalidated && graph == NULL;
    /* The legacy stream may not depend on a capturing blocking stream. */
    CUDA_CHECK(cudaStreamBeginCapture(blocking, cudaStreamCaptureModeGlobal));
    ok &= cudaMemcpy(host, dev, sizeof host, cudaMemcpyDeviceToHost) == cudaErrorStreamCaptureImplicit;
    ok &= cudaStreamEndCapture(blocking, &graph) == cudaErrorStreamCaptureInvalidated;
    /* Synchronizing a capturing stream is not allowed. */
    CUDA_CHECK(cudaStreamBeginCapture(nonblocking, cudaStreamCaptureModeGlobal));
    ok &= cudaStreamSynchronize(nonblocking) == cudaErrorStreamCaptureUnsupported;
    ok &= cudaStreamEndCapture(nonblocking, &graph) == cudaErrorStreamCaptureInvalidated;
    /* In relaxed mode cudaMalloc is allowed, and the legacy stream may run beside a
     * non-blocking capture. */
    CUDA_CHECK(cudaStreamBeginCapture(nonblocking, cudaStreamCaptureModeRelaxed));
    ok &= cudaMalloc(&p, 64) == cudaSuccess;
    ok &= cudaMemcpy(host, dev, sizeof host, cudaMemcpyDeviceToHost) == cudaSuccess;
    ok &= cudaStreamEndCapture(nonblocking, &graph) == cudaSuccess && graph != NULL;
    cudaGetLastError();
    return ok ? 0 : 1;
}

static void check_runtime_checks(void) {
    const char *copies[] = {"cudaMemcpy: the source", "runs 1 bytes past the end of the device allocation of 32 bytes",
                            "cudaMemset: the destination", "is not in any device allocation",
                            "not the start of a live device allocation", NULL};
    expect_pass("copies and frees outside the allocation table", run_bad_copies, copies);
    const char *capture[] = {"cudaMalloc while stream", "(global mode): not allowed on a GPU",
                             "cudaMemcpy while stream", "cudaStreamSynchronize on stream", NULL};
    expect_pass("capture rules", run_capture_rules, capture);
}

/* ---- the race shaker ---- */

#define SHAKE_BLOCKS 4
#define SHAKE_THREADS 256

/* out[t] = the value thread t - 1 stored (thread 0: its own). The racy kernels read it without
 * the barrier that orders the store before the load; the twins have it. */
static __global__ void missing_syncthreads_kernel(int *out, const int *in) {
    __shared__ int s[SHAKE_THREADS];
    const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    s[t] = in[base + t];
    out[base + t] = s[t == 0 ? 0 : t - 1];
}

static __global__ void with_syncthreads_kernel(int *out, const int *in) {
    __shared__ int s[SHAKE_THREADS];
    const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    s[t] = in[base + t];
    __syncthreads();
    out[base + t] = s[t == 0 ? 0 : t - 1];
}

/* The same within each warp: lane l reads lane l - 1's value (lane 0 its own). */
static __global__ void missing_syncwarp_kernel(int *out, const int *in) {
    __shared__ int s[SHAKE_THREADS];
    const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    s[t] = in[base + t];
    out[base + t] = s[t % 32 == 0 ? t : t - 1];
}

static __global__ void with_syncwarp_kernel(int *out, const int *in) {
    __shared__ int s[SHAKE_THREADS];
    const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    s[t] = in[base + t];
    __syncwarp();
    out[base + t] = s[t % 32 == 0 ? t : t - 1];
}

/* out[t] = in[t ^ 1] (through a shuffle) + in[t + 32] (the next warp's, through shared memory).
 * A warp collective is not a block barrier: without __syncthreads the read of the other warp's
 * value races with its store. */
static __global__ void shuffle_without_barrier_kernel(int *out, const int *in) {
    __shared__ int s[SHAKE_THREADS];
    const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    s[t] = in[base + t];
    const int partner = __shfl_xor_sync(0xffffffffu, s[t], 1);
    out[base + t] = partner + s[(t + 32) % SHAKE_THREADS];
}

static __global__ void shuffle_with_barrier_kernel(int *out, const int *in) {
    __shared__ int s[SHAKE_THREADS];
    const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    s[t] = in[base + t];
    const int partner = __shfl_xor_sync(0xffffffffu, s[t], 1);
    __syncthreads();
    out[base + t] = partner + s[(t + 32) % SHAKE_THREADS];
}


/* What output i must be: the value of the thread before (in the block, or in the warp), or
 * (shuffle case) the xor-1 partner's plus the next warp's. */
typedef enum { FROM_BLOCK_NEIGHBOUR, FROM_WARP_NEIGHBOUR, FROM_PARTNER_AND_NEXT_WARP } shaken_expectation;

static int expected_output(const int *in, int i, shaken_expectation kind) {
    const int base = i - i % SHAKE_THREADS, t = i % SHAKE_THREADS;
    if (kind == FROM_PARTNER_AND_NEXT_WARP) return in[base + (t ^ 1)] + in[base + (t + 32) % SHAKE_THREADS];
    const int first = kind == FROM_WARP_NEIGHBOUR ? i % 32 == 0 : t == 0;
    return in[first ? i : i - 1];
}

/* Runs `kernel` on distinct inputs; exit code 0 when every output is right, 3 when any is not. */
static int run_shaken(void (*kernel)(int *, const int *), shaken_expectation kind) {
    const int n = SHAKE_BLOCKS * SHAKE_THREADS;
    int host_in[SHAKE_BLOCKS * SHAKE_THREADS], host_out[SHAKE_BLOCKS * SHAKE_THREADS];
    for (int i = 0; i < n; i++) host_in[i] = 1000 * i + 7;
    int *in = device_ints(n), *out = device_ints(n);
    CUDA_CHECK(cudaMemcpy(in, host_in, sizeof host_in, cudaMemcpyHostToDevice));
    LAUNCH_KERNEL(kernel, SHAKE_BLOCKS, SHAKE_THREADS, 0, 0, out, in);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaMemcpy(host_out, out, sizeof host_out, cudaMemcpyDeviceToHost));
    int wrong = 0;
    for (int i = 0; i < n; i++) wrong += host_out[i] != expected_output(host_in, i, kind);
    return wrong == 0 ? 0 : 3;
}
static int run_missing_syncthreads(void) { return run_shaken(missing_syncthreads_kernel, FROM_BLOCK_NEIGHBOUR); }
static int run_with_syncthreads(void) { return run_shaken(with_syncthreads_kernel, FROM_BLOCK_NEIGHBOUR); }
static int run_missing_syncwarp(void) { return run_shaken(missing_syncwarp_kernel, FROM_WARP_NEIGHBOUR); }
static int run_with_syncwarp(void) { return run_shaken(with_syncwarp_kernel, FROM_WARP_NEIGHBOUR); }
static int run_shuffle_without_barrier(void) {
    return run_shaken(shuffle_without_barrier_kernel, FROM_PARTNER_AND_NEXT_WARP);
}
static int run_shuffle_with_barrier(void) {
    return run_shaken(shuffle_with_barrier_kernel, FROM_PARTNER_AND_NEXT_WARP);
}

static void check_shaker(const char *name, int (*racy)(void), int (*fixed)(void)) {
    outcome o = run_case(racy, "0");
    CHECK(o.finished && o.exit_code == 0, "%s: thread order (seed 0) should hide the race (exit %d)",
          name, o.exit_code);
    for (const char *seed : {"1", "2"}) {
        o = run_case(racy, seed);
        CHECK(o.finished && o.exit_code == 3, "%s: the shaker with seed %s did not catch the race "
              "(exit %d)", name, seed, o.exit_code);
    }
    int wrong = 0;
    for (int seed = 1; seed <= 20; seed++) {
        char text[16];
        snprintf(text, sizeof text, "%d", seed);
        o = run_case(fixed, text);
        wrong += !o.finished || o.exit_code != 0;
    }
    CHECK(wrong == 0, "%s: the fixed twin failed under %d of 20 seeds", name, wrong);
}

/* ---- poison ---- */

static __global__ void read_dynamic_shared_kernel(unsigned short *out /* [n] */, int n) {
    DYNAMIC_SHARED(unsigned short, buffer);
    for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = buffer[i];
}

static int run_poison(void) {
    const size_t bytes = 1001;
    unsigned char host[1001];
    void *p;
    CUDA_CHECK(cudaMalloc(&p, bytes));
    CUDA_CHECK(cudaMemcpy(host, p, bytes, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (size_t i = 0; i < bytes; i++) bad += host[i] != (i % 2 == 0 ? 0xFF : 0x7F);
    uint16_t as_u16;
    uint32_t as_u32;
    float as_f32;
    memcpy(&as_u16, host + 2, 2);
    memcpy(&as_u32, host + 4, 4);
    memcpy(&as_f32, host + 8, 4);
    const bool views = as_u16 == 0x7FFF && as_u32 == 0x7FFF7FFFu && isnan(as_f32) && (int32_t)as_u32 > 0;
    unsigned short *shared_out, host_shared[512];
    CUDA_CHECK(cudaMalloc((void **)&shared_out, sizeof host_shared));
    LAUNCH_KERNEL(read_dynamic_shared_kernel, 1, 64, sizeof host_shared, 0, shared_out, 512);
    CUDA_CHECK(cudaMemcpy(host_shared, shared_out, sizeof host_shared, cudaMemcpyDeviceToHost));
    int bad_shared = 0;
    for (int i = 0; i < 512; i++) bad_shared += host_shared[i] != 0x7FFF;
    if (bad || !views || bad_shared)
        fprintf(stderr, "poison: %d bytes wrong, views %d, %d shared halves wrong\n", bad, views, bad_shared);
    return bad == 0 && views && bad_shared == 0 ? 0 : 1;
}

int main(void) {
    const char *none[] = {NULL};
    check_hangs_become_faults();
    check_bad_launches();
    check_memory_faults();
    check_runtime_checks();
    check_shaker("missing __syncthreads", run_missing_syncthreads, run_with_syncthreads);
    check_shaker("missing __syncwarp", run_missing_syncwarp, run_with_syncwarp);
    check_shaker("a shuffle in place of __syncthreads", run_shuffle_without_barrier,
                 run_shuffle_with_barrier);
    expect_pass("poison", run_poison, none);
    return check_finish("test_emu_faults");
}
