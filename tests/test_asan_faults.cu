/*
 * The sanitizer build's planted faults (GPT2_SANITIZE, emulation build only): kernels that read
 * one element past a cudaMalloc'd buffer, write one before it, read a freed one, read past the
 * end of their dynamic shared memory, and overflow a signed int. Each runs in a forked child; the child must die with AddressSanitizer's (or
 * UndefinedBehaviorSanitizer's) report, and the report must name the kernel: the emulator's line
 * before it ("emu: AddressSanitizer stopped kernel K, block B, thread T") and the kernel's frame
 * in its stack. A sanitizer that stopped seeing kernels' memory would fail this test.
 *
 * usage: test_asan_faults [--print]   (--print: show each child's whole report)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda_check.h"
#include "kernels/launch.h"
#include "tests/check.h"
#include "tests/child_case.h"

#define CASE_SECONDS 120 /* a sanitized child reports within seconds; past this it hangs */

typedef child_outcome outcome;

/* Runs body() in a child with stderr captured; its return value is the exit code. */
static outcome run_case(int (*body)(void)) {
    outcome o;
    child_case_run(&o, body, NULL, CASE_SECONDS);
    return o;
}

static bool print_reports = false;

/* The child must fail, and its stderr must hold every one of `words`. */
static void expect_report(const char *name, int (*body)(void), const char *const *words) {
    static outcome o; /* large */
    o = run_case(body);
    CHECK(o.finished, "%s: the child hung (killed after %d s)", name, CASE_SECONDS);
    CHECK(o.exit_code != 0, "%s: the child exited 0: the fault went unseen", name);
    bool all = true;
    for (; *words != NULL; words++) {
        const bool found = strstr(o.err, *words) != NULL;
        CHECK(found, "%s: the report does not say \"%s\"", name, *words);
        all &= found;
    }
    if (!all || print_reports) printf("---- %s: exit code %d, stderr:\n%s----\n", name, o.exit_code, o.err);
    else printf("%s: caught (exit code %d)\n", name, o.exit_code);
}

/* ---- the planted faults ---- */

/* out[i] = in[i + 1]: the last thread reads one element past the end of in[n]. */
static __global__ void read_past_end_kernel(const float *in, float *out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = in[i + 1];
}

/* out[i - 1] = i: thread 0 writes one element before the start of out. */
static __global__ void write_before_start_kernel(float *out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i - 1] = (float)i;
}

static __global__ void read_kernel(const float *in, float *out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = in[i];
}

/* n floats of dynamic shared memory; thread 0 reads the one after them. */
static __global__ void shared_past_end_kernel(float *out, int n) {
    DYNAMIC_SHARED(float, buffer);
    for (int i = threadIdx.x; i < n; i += blockDim.x) buffer[i] = (float)i;
    __syncthreads();
    if (threadIdx.x == 0) out[0] = buffer[n];
}

/* in[i] * in[i]: overflows int for the values below (undefined behavior). */
static __global__ void square_kernel(const int *in, int *out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = in[i] * in[i];
}

static float *device_floats(int n) {
    float *p;
    CUDA_CHECK(cudaMalloc((void **)&p, (size_t)n * sizeof(float)));
    CUDA_CHECK(cudaMemset(p, 0, (size_t)n * sizeof(float)));
    return p;
}

/* 1000 floats: not a multiple of the 256-byte alignment, so the overrun lands where padding was. */
static int run_read_past_end(void) {
    const int n = 1000;
    float *in = device_floats(n), *out = device_floats(n);
    LAUNCH_KERNEL(read_past_end_kernel, (n + 127) / 128, 128, 0, 0, in, out, n);
    return cudaDeviceSynchronize() == cudaSuccess ? 0 : 2;
}

static int run_write_before_start(void) {
    const int n = 256;
    float *out = device_floats(n);
    LAUNCH_KERNEL(write_before_start_kernel, 2, 128, 0, 0, out, n);
    return cudaDeviceSynchronize() == cudaSuccess ? 0 : 2;
}

static int run_use_after_free(void) {
    const int n = 512;
    float *in = device_floats(n), *out = device_floats(n);
    CUDA_CHECK(cudaFree(in));
    LAUNCH_KERNEL(read_kernel, 4, 128, 0, 0, in, out, n);
    return cudaDeviceSynchronize() == cudaSuccess ? 0 : 2;
}

/* 1001 floats: the block's buffer ends 12 bytes before the guard page, in poisoned memory. */
static int run_shared_past_end(void) {
    float *out = device_floats(1);
    LAUNCH_KERNEL(shared_past_end_kernel, 3, 64, 1001 * sizeof(float), 0, out, 1001);
    return cudaDeviceSynchronize() == cudaSuccess ? 0 : 2;
}

static int run_signed_overflow(void) {
    const int n = 64;
    int host[n], *in, *out;
    for (int i = 0; i < n; i++) host[i] = 1 << 20;
    CUDA_CHECK(cudaMalloc((void **)&in, sizeof host));
    CUDA_CHECK(cudaMalloc((void **)&out, sizeof host));
    CUDA_CHECK(cudaMemcpy(in, host, sizeof host, cudaMemcpyHostToDevice));
    LAUNCH_KERNEL(square_kernel, 1, n, 0, 0, in, out, n);
    return cudaDeviceSynchronize() == cudaSuccess ? 0 : 2;
}

int main(int argc, char **argv) {
    print_reports = argc > 1 && strcmp(argv[1], "--print") == 0;
    const char *past_end[] = {"ERROR: AddressSanitizer: heap-buffer-overflow", "READ of size 4",
                              "emu: AddressSanitizer stopped kernel read_past_end_kernel, block (7,0,0), thread (103,0,0)",
                              "read_past_end_kernel", "0 bytes ", "4000-byte region", "cudaMalloc", NULL};
    expect_report("read one past the end", run_read_past_end, past_end);
    const char *before_start[] = {"ERROR: AddressSanitizer: heap-buffer-overflow", "WRITE of size 4",
                                  "emu: AddressSanitizer stopped kernel write_before_start_kernel, block (0,0,0), thread (0,0,0)",
                                  "4 bytes ", "1024-byte region", NULL};
    expect_report("write one before the start", run_write_before_start, before_start);
    const char *after_free[] = {"ERROR: AddressSanitizer: heap-use-after-free",
                                "emu: AddressSanitizer stopped kernel read_kernel", "cudaFree", NULL};
    expect_report("read after cudaFree", run_use_after_free, after_free);
    const char *shared[] = {"ERROR: AddressSanitizer: use-after-poison", "READ of size 4",
                            "emu: AddressSanitizer stopped kernel shared_past_end_kernel, block (", NULL};
    expect_report("read past the end of dynamic shared memory", run_shared_past_end, shared);
    const char *overflow[] = {"runtime error: signed integer overflow", "test_asan_faults.cu", NULL};
    expect_report("signed overflow in a kernel", run_signed_overflow, overflow);
    return check_finish("test_asan_faults");
}
