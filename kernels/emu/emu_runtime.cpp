/*
 * The SIMT emulator's CUDA runtime, part 1: errors, the device, function attributes and memory.
 * (Streams, events, graphs and launches: emu_stream.cpp.)
 *
 * Each function has the toolkit header's exact signature and C linkage, so that host code
 * compiles unchanged and links to this instead of libcudart. "Device" memory is host memory
 * that the runtime keeps in a table: fresh allocations are poisoned (0x7FFF), and a copy or a
 * memset that leaves a device allocation, or cudaFree of anything but a live allocation's start,
 * is an error with a message on stderr, where a GPU would fault or corrupt memory.
 */
#include "kernels/emu/emu_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include <map>
#include <mutex>

#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define GPT2_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) /* clang */
#define GPT2_EMU_ASAN 1
#endif
#endif

namespace emu {
namespace {

/* ---- errors ---- */

thread_local cudaError_t last_error = cudaSuccess;

#define EMU_ERRORS(X)                                                                             \
    X(cudaSuccess, "no error")                                                                    \
    X(cudaErrorInvalidValue, "invalid argument")                                                  \
    X(cudaErrorMemoryAllocation, "out of memory")                                                 \
    X(cudaErrorInitializationError, "initialization error")                                       \
    X(cudaErrorInvalidConfiguration, "invalid configuration argument")                            \
    X(cudaErrorInvalidPitchValue, "invalid pitch argument")                                       \
    X(cudaErrorInvalidSymbol, "invalid device symbol")                                            \
    X(cudaErrorInvalidMemcpyDirection, "invalid copy direction for memcpy")                       \
    X(cudaErrorInvalidDeviceFunction, "invalid device function")                                  \
    X(cudaErrorNoDevice, "no CUDA-capable device is detected")                                    \
    X(cudaErrorInvalidDevice, "invalid device ordinal")                                           \
    X(cudaErrorInvalidResourceHandle, "invalid resource handle")                                  \
    X(cudaErrorIllegalState, "the operation cannot be performed in the present state")            \
    X(cudaErrorNotReady, "device not ready")                                                      \
    X(cudaErrorIllegalAddress, "an illegal memory access was encountered")                        \
    X(cudaErrorLaunchOutOfResources, "too many resources requested for launch")                   \
    X(cudaErrorLaunchFailure, "unspecified launch failure")                                       \
    X(cudaErrorNotSupported, "operation not supported")                                           \
    X(cudaErrorStreamCaptureUnsupported, "operation not permitted when stream is capturing")      \
    X(cudaErrorStreamCaptureInvalidated, "operation failed due to a previous error during capture") \
    X(cudaErrorStreamCaptureUnmatched, "capture was not initiated in this stream")                \
    X(cudaErrorStreamCaptureImplicit,                                                             \
      "operation would make the legacy stream depend on a capturing blocking stream")             \
    X(cudaErrorStreamCaptureWrongThread,                                                          \
      "attempt to terminate a thread-local capture sequence from another thread")                 \
    X(cudaErrorUnknown, "unknown error")

/* ---- the device: an H100/H200-like compute capability 9.0, named so nobody takes it for one ---- */

constexpr const char *device_name = "SIMT emulator on the CPU (not a GPU)";
constexpr int multiprocessors = 132;
constexpr size_t shared_per_multiprocessor = 228 * 1024;
constexpr size_t default_memory_bytes = 16ull << 30;

size_t total_memory() {
    static const size_t bytes = [] {
        const char *text = getenv("GPT2_EMU_MEM_BYTES");
        if (text == nullptr || *text == '\0') return default_memory_bytes;
        char *end;
        unsigned long long value = strtoull(text, &end, 10);
        if (*end != '\0' || value == 0 || text[0] == '-') {
            fprintf(stderr, "emu: GPT2_EMU_MEM_BYTES=%s is not a positive number of bytes\n", text);
            exit(EXIT_FAILURE);
        }
        return (size_t)value;
    }();
    return bytes;
}

cudaError_t check_device(int device) {
    return device == 0 ? cudaSuccess : set_error(cudaErrorInvalidDevice);
}

/* The attributes of the emulated device; false for one the emulator does not model. */
bool device_attribute(cudaDeviceAttr attribute, int *value) {
    switch (attribute) {
    case cudaDevAttrMaxThreadsPerBlock: *value = (int)max_threads_per_block; return true;
    case cudaDevAttrMaxBlockDimX: *value = (int)max_block_dim[0]; return true;
    case cudaDevAttrMaxBlockDimY: *value = (int)max_block_dim[1]; return true;
    case cudaDevAttrMaxBlockDimZ: *value = (int)max_block_dim[2]; return true;
    case cudaDevAttrMaxGridDimX: *value = (int)max_grid_dim[0]; return true;
    case cudaDevAttrMaxGridDimY: *value = (int)max_grid_dim[1]; return true;
    case cudaDevAttrMaxGridDimZ: *value = (int)max_grid_dim[2]; return true;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = (int)default_dynamic_shared; return true;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = (int)optin_dynamic_shared; return true;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *value = (int)shared_per_multiprocessor; return true;
    case cudaDevAttrTotalConstantMemory: *value = 64 * 1024; return true;
    case cudaDevAttrWarpSize: *value = warpSize; return true;
    case cudaDevAttrMaxRegistersPerBlock: *value = 65536; return true;
    case cudaDevAttrMaxRegistersPerMultiprocessor: *value = 65536; return true;
    case cudaDevAttrMultiProcessorCount: *value = multiprocessors; return true;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *value = 2048; return true;
    case cudaDevAttrMaxBlocksPerMultiprocessor: *value = 32; return true;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; return true;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; return true;
    case cudaDevAttrL2CacheSize: *value = 50 * 1024 * 1024; return true;
    case cudaDevAttrGlobalMemoryBusWidth: *value = 5120; return true;
    case cudaDevAttrClockRate: *value = 0; return true;       /* no clock: 0 kHz */
    case cudaDevAttrMemoryClockRate: *value = 0; return true; /* likewise */
    case cudaDevAttrConcurrentKernels: *value = 1; return true;
    case cudaDevAttrUnifiedAddressing: *value = 1; return true;
    case cudaDevAttrIntegrated: *value = 0; return true;
    case cudaDevAttrComputeMode: *value = cudaComputeModeDefault; return true;
    case cudaDevAttrAsyncEngineCount: *value = 0; return true;
    case cudaDevAttrEccEnabled: *value = 0; return true;
    case cudaDevAttrManagedMemory: *value = 0; return true;
    case cudaDevAttrMemoryPoolsSupported: *value = 0; return true;
    case cudaDevAttrCooperativeLaunch: *value = 0; return true;
    default: return false;
    }
}

/* ---- function attributes: the dynamic shared memory a kernel may use ---- */

std::mutex functions_mutex;
std::map<const void *, int> max_dynamic_shared; /* set by cudaFuncSetAttribute */

/* ---- memory: the table of live allocations ---- */

constexpr size_t device_alignment = 256; /* as cudaMalloc guarantees */

struct allocation_table {
    std::mutex mutex;
    std::map<uintptr_t, size_t> device, host; /* start -> bytes */
    size_t device_bytes = 0;
};

allocation_table &allocations() {
    static allocation_table table;
    return table;
}

/* The live device allocation that contains p, or end(). Call with the table locked. */
std::map<uintptr_t, size_t>::const_iterator containing(const allocation_table &table, const void *p) {
    const uintptr_t address = (uintptr_t)p;
    auto it = table.device.upper_bound(address);
    if (it == table.device.begin()) return table.device.end();
    --it;
    return address < it->first + it->second ? it : table.device.end();
}

bool is_device_pointer(const void *p) {
    allocation_table &table = allocations();
    std::lock_guard<std::mutex> lock(table.mutex);
    return containing(table, p) != table.device.end();
}

/* "[p, p + bytes) is not inside one device allocation": prints why, returns InvalidValue. */
cudaError_t range_error(const char *api, const char *role, const void *p, size_t bytes) {
    allocation_table &table = allocations();
    std::lock_guard<std::mutex> lock(table.mutex);
    auto it = containing(table, p);
    if (it == table.device.end())
        fprintf(stderr, "emu: %s: the %s %p (%zu bytes) is not in any device allocation\n", api, role,
                p, bytes);
    else
        fprintf(stderr, "emu: %s: the %s %p (%zu bytes) runs %zu bytes past the end of the device "
                        "allocation of %zu bytes at %p\n",
                api, role, p, bytes, (uintptr_t)p + bytes - (it->first + it->second), it->second,
                (void *)it->first);
    return set_error(cudaErrorInvalidValue);
}

cudaError_t check_device_range(const char *api, const char *role, const void *p, size_t bytes) {
    return device_range(p, bytes) ? cudaSuccess : range_error(api, role, p, bytes);
}

/*
 * Host memory for a device allocation, 256-byte aligned like cudaMalloc's. Under AddressSanitizer
 * it is exactly `bytes` long, so that the redzones ASan's allocator puts on both sides start at
 * the first byte past the buffer: a kernel that reads one element past its buffer (or before
 * it) gets a heap-buffer-overflow report, "0 bytes after the N-byte region" with the cudaMalloc
 * that allocated it, and freed device memory stays in ASan's quarantine (heap-use-after-free).
 * The redzones grow with the allocation, up to 2 KiB a side (ASAN_OPTIONS redzone= sets the
 * least). Without ASan the size is rounded up to the alignment, as aligned_alloc requires.
 */
void *device_allocate(size_t bytes) {
#ifdef GPT2_EMU_ASAN
    void *p = nullptr;
    return posix_memalign(&p, device_alignment, bytes) == 0 ? p : nullptr;
#else
    return aligned_alloc(device_alignment, (bytes + device_alignment - 1) / device_alignment * device_alignment);
#endif
}

void device_release(void *p, size_t bytes) {
    poison(p, bytes); /* a read after free, if the memory is not reused, reads poison */
    free(p);
}

/* Which sides of a copy are device memory, for an explicit kind or cudaMemcpyDefault. */
bool copy_sides(cudaMemcpyKind kind, const void *dst, const void *src, bool *dst_device,
                bool *src_device) {
    switch (kind) {
    case cudaMemcpyHostToHost: *dst_device = false, *src_device = false; return true;
    case cudaMemcpyHostToDevice: *dst_device = true, *src_device = false; return true;
    case cudaMemcpyDeviceToHost: *dst_device = false, *src_device = true; return true;
    case cudaMemcpyDeviceToDevice: *dst_device = true, *src_device = true; return true;
    case cudaMemcpyDefault:
        *dst_device = is_device_pointer(dst);
        *src_device = is_device_pointer(src);
        return true;
    }
    return false;
}

/* Checks a 2D copy (a 1D one is one row): each device side must hold all its rows. */
cudaError_t check_copy(const char *api, void *dst, size_t dpitch, const void *src, size_t spitch,
                       size_t width, size_t height, cudaMemcpyKind kind) {
    if (width == 0 || height == 0) return cudaSuccess;
    if (width > dpitch || width > spitch) return set_error(cudaErrorInvalidPitchValue);
    bool dst_device, src_device;
    if (!copy_sides(kind, dst, src, &dst_device, &src_device))
        return set_error(cudaErrorInvalidMemcpyDirection);
    cudaError_t status = cudaSuccess;
    if (dst_device) status = check_device_range(api, "destination", dst, dpitch * (height - 1) + width);
    if (status == cudaSuccess && src_device)
        status = check_device_range(api, "source", src, spitch * (height - 1) + width);
    return status;
}

cudaError_t copy(const char *api, void *dst, size_t dpitch, const void *src, size_t spitch,
                 size_t width, size_t height, cudaMemcpyKind kind) {
    cudaError_t status = check_copy(api, dst, dpitch, src, spitch, width, height, kind);
    if (status != cudaSuccess || width == 0) return status;
    for (size_t row = 0; row < height; row++)
        memmove((unsigned char *)dst + row * dpitch, (const unsigned char *)src + row * spitch, width);
    return cudaSuccess;
}

cudaError_t check_fill(const char *api, void *p, size_t bytes) {
    return bytes == 0 ? cudaSuccess : check_device_range(api, "destination", p, bytes);
}

cudaError_t fill(const char *api, void *p, int value, size_t bytes) {
    cudaError_t status = check_fill(api, p, bytes);
    if (status == cudaSuccess && bytes > 0) memset(p, value, bytes);
    return status;
}

} // namespace

/* ---- shared with the other parts (emu_internal.h) ---- */

void poison(void *p, size_t bytes) {
    unsigned char *bytes_out = (unsigned char *)p;
    for (size_t i = 0; i < bytes; i++) bytes_out[i] = i % 2 == 0 ? 0xFF : 0x7F;
}

cudaError_t set_error(cudaError_t error) {
    if (error != cudaSuccess) last_error = error;
    return error;
}

bool device_range(const void *p, size_t bytes) {
    allocation_table &table = allocations();
    std::lock_guard<std::mutex> lock(table.mutex);
    auto it = containing(table, p);
    return it != table.device.end() && bytes <= it->first + it->second - (uintptr_t)p;
}

size_t dynamic_shared_limit(const void *function) {
    std::lock_guard<std::mutex> lock(functions_mutex);
    auto it = max_dynamic_shared.find(function);
    return it == max_dynamic_shared.end() ? default_dynamic_shared : (size_t)it->second;
}

} // namespace emu

using namespace emu;

/* ---- errors ---- */

extern "C" cudaError_t cudaGetLastError(void) {
    cudaError_t error = last_error;
    last_error = cudaSuccess;
    return error;
}

extern "C" cudaError_t cudaPeekAtLastError(void) { return last_error; }

extern "C" const char *cudaGetErrorName(cudaError_t error) {
#define EMU_ERROR_NAME(code, text) \
    case code: return #code;
    switch (error) { EMU_ERRORS(EMU_ERROR_NAME) default: return "cudaErrorUnknown"; }
#undef EMU_ERROR_NAME
}

extern "C" const char *cudaGetErrorString(cudaError_t error) {
#define EMU_ERROR_STRING(code, text) \
    case code: return text;
    switch (error) { EMU_ERRORS(EMU_ERROR_STRING) default: return "unrecognized error code"; }
#undef EMU_ERROR_STRING
}

/* ---- the device ---- */

extern "C" cudaError_t cudaGetDeviceCount(int *count) {
    *count = 1;
    return cudaSuccess;
}

extern "C" cudaError_t cudaSetDevice(int device) { return check_device(device); }

extern "C" cudaError_t cudaGetDevice(int *device) {
    *device = 0;
    return cudaSuccess;
}

extern "C" cudaError_t cudaDriverGetVersion(int *version) {
    *version = CUDART_VERSION;
    return cudaSuccess;
}

extern "C" cudaError_t cudaRuntimeGetVersion(int *version) {
    *version = CUDART_VERSION;
    return cudaSuccess;
}

extern "C" cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attribute, int device) {
    if (check_device(device) != cudaSuccess) return cudaErrorInvalidDevice;
    if (device_attribute(attribute, value)) return cudaSuccess;
    fprintf(stderr, "emu: cudaDeviceGetAttribute: attribute %d is not emulated\n", (int)attribute);
    return set_error(cudaErrorInvalidValue);
}

extern "C" cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device) {
    if (check_device(device) != cudaSuccess) return cudaErrorInvalidDevice;
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "%s", device_name);
    prop->totalGlobalMem = total_memory();
    prop->sharedMemPerBlock = default_dynamic_shared;
    prop->sharedMemPerBlockOptin = optin_dynamic_shared;
    prop->sharedMemPerMultiprocessor = shared_per_multiprocessor;
    prop->reservedSharedMemPerBlock = 1024;
    prop->regsPerBlock = prop->regsPerMultiprocessor = 65536;
    prop->warpSize = warpSize;
    prop->memPitch = 2147483647;
    prop->maxThreadsPerBlock = (int)max_threads_per_block;
    for (int i = 0; i < 3; i++) {
        prop->maxThreadsDim[i] = (int)max_block_dim[i];
        prop->maxGridSize[i] = (int)max_grid_dim[i];
    }
    prop->totalConstMem = 64 * 1024;
    prop->major = 9;
    prop->minor = 0;
    prop->textureAlignment = 512;
    prop->multiProcessorCount = multiprocessors;
    prop->maxThreadsPerMultiProcessor = 2048;
    prop->maxBlocksPerMultiProcessor = 32;
    prop->l2CacheSize = 50 * 1024 * 1024;
    prop->memoryBusWidth = 5120;
    prop->concurrentKernels = 1;
    prop->unifiedAddressing = 1;
    prop->streamPrioritiesSupported = 0;
    return cudaSuccess;
}

extern "C" cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value) {
    if (func == nullptr) return set_error(cudaErrorInvalidDeviceFunction);
    switch (attr) {
    case cudaFuncAttributeMaxDynamicSharedMemorySize:
        if (value < 0 || (size_t)value > optin_dynamic_shared) {
            fprintf(stderr, "emu: cudaFuncSetAttribute: %d bytes of dynamic shared memory, over the "
                            "opt-in maximum of %zu\n", value, optin_dynamic_shared);
            return set_error(cudaErrorInvalidValue);
        }
        {
            std::lock_guard<std::mutex> lock(functions_mutex);
            max_dynamic_shared[func] = value;
        }
        return cudaSuccess;
    case cudaFuncAttributePreferredSharedMemoryCarveout:
        return value >= -1 && value <= 100 ? cudaSuccess : set_error(cudaErrorInvalidValue);
    default:
        return set_error(cudaErrorInvalidValue);
    }
}

/* What the emulator knows of a kernel: register and static shared sizes come from ptxas only. */
extern "C" cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes *attr, const void *func) {
    if (func == nullptr) return set_error(cudaErrorInvalidDeviceFunction);
    memset(attr, 0, sizeof *attr);
    attr->maxThreadsPerBlock = (int)max_threads_per_block;
    attr->maxDynamicSharedSizeBytes = (int)dynamic_shared_limit(func);
    attr->preferredShmemCarveout = -1;
    attr->ptxVersion = attr->binaryVersion = 90;
    return cudaSuccess;
}

/* ---- device memory ---- */

extern "C" cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    allocation_table &table = allocations();
    std::lock_guard<std::mutex> lock(table.mutex);
    *total_bytes = total_memory();
    *free_bytes = table.device_bytes < *total_bytes ? *total_bytes - table.device_bytes : 0;
    return cudaSuccess;
}

extern "C" cudaError_t cudaMalloc(void **devPtr, size_t size) {
    cudaError_t status = capture_forbids("cudaMalloc", capture_rule::unsafe_call);
    if (status != cudaSuccess) return status;
    *devPtr = nullptr;
    if (size == 0) return cudaSuccess;
    allocation_table &table = allocations();
    {
        std::lock_guard<std::mutex> lock(table.mutex);
        if (size > total_memory() - table.device_bytes) return set_error(cudaErrorMemoryAllocation);
    }
    void *p = device_allocate(size);
    if (p == nullptr) return set_error(cudaErrorMemoryAllocation);
    poison(p, size);
    std::lock_guard<std::mutex> lock(table.mutex);
    table.device[(uintptr_t)p] = size;
    table.device_bytes += size;
    *devPtr = p;
    return cudaSuccess;
}

extern "C" cudaError_t cudaFree(void *devPtr) {
    cudaError_t status = capture_forbids("cudaFree", capture_rule::unsafe_call);
    if (status != cudaSuccess || devPtr == nullptr) return status;
    allocation_table &table = allocations();
    size_t bytes;
    {
        std::lock_guard<std::mutex> lock(table.mutex);
        auto it = table.device.find((uintptr_t)devPtr);
        if (it == table.device.end()) {
            fprintf(stderr, "emu: cudaFree(%p): not the start of a live device allocation\n", devPtr);
            return set_error(cudaErrorInvalidValue);
        }
        bytes = it->second;
        table.device_bytes -= bytes;
        table.device.erase(it);
    }
    device_release(devPtr, bytes);
    return cudaSuccess;
}

extern "C" cudaError_t cudaHostAlloc(void **pHost, size_t size, unsigned int flags) {
    *pHost = size == 0 ? nullptr : malloc(size);
    if (size != 0 && *pHost == nullptr) return set_error(cudaErrorMemoryAllocation);
    allocation_table &table = allocations();
    std::lock_guard<std::mutex> lock(table.mutex);
    if (*pHost != nullptr) table.host[(uintptr_t)*pHost] = size;
    return cudaSuccess;
}

extern "C" cudaError_t cudaMallocHost(void **ptr, size_t size) {
    return cudaHostAlloc(ptr, size, cudaHostAllocDefault);
}

extern "C" cudaError_t cudaFreeHost(void *ptr) {
    if (ptr == nullptr) return cudaSuccess;
    allocation_table &table = allocations();
    std::lock_guard<std::mutex> lock(table.mutex);
    if (table.host.erase((uintptr_t)ptr) == 0) {
        fprintf(stderr, "emu: cudaFreeHost(%p): not a live cudaMallocHost/cudaHostAlloc allocation\n", ptr);
        return set_error(cudaErrorInvalidValue);
    }
    free(ptr);
    return cudaSuccess;
}

extern "C" cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *attributes, const void *ptr) {
    memset(attributes, 0, sizeof *attributes);
    attributes->device = 0;
    if (is_device_pointer(ptr)) {
        attributes->type = cudaMemoryTypeDevice;
        attributes->devicePointer = (void *)ptr;
        return cudaSuccess;
    }
    allocation_table &table = allocations();
    std::lock_guard<std::mutex> lock(table.mutex);
    auto it = table.host.upper_bound((uintptr_t)ptr);
    if (it != table.host.begin() && (uintptr_t)ptr < std::prev(it)->first + std::prev(it)->second) {
        attributes->type = cudaMemoryTypeHost;
        attributes->hostPointer = attributes->devicePointer = (void *)ptr;
    } else {
        attributes->type = cudaMemoryTypeUnregistered;
        attributes->device = -2; /* as CUDA reports for unregistered memory */
    }
    return cudaSuccess;
}

/* ---- copies and fills: at once on the legacy stream, or as a stream operation ---- */
/* A stream operation is checked when it is issued (or captured) and again when it runs. */

extern "C" cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind) {
    cudaError_t status = capture_forbids("cudaMemcpy", capture_rule::legacy_stream);
    return status != cudaSuccess ? status : copy("cudaMemcpy", dst, count, src, count, count, 1, kind);
}

extern "C" cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count,
                                       enum cudaMemcpyKind kind, cudaStream_t stream) {
    cudaError_t status = check_copy("cudaMemcpyAsync", dst, count, src, count, count, 1, kind);
    if (status != cudaSuccess) return status;
    return enqueue(stream, "cudaMemcpyAsync",
                   [=] { return copy("cudaMemcpyAsync", dst, count, src, count, count, 1, kind); });
}

extern "C" cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch,
                                    size_t width, size_t height, enum cudaMemcpyKind kind) {
    cudaError_t status = capture_forbids("cudaMemcpy2D", capture_rule::legacy_stream);
    return status != cudaSuccess ? status
                                 : copy("cudaMemcpy2D", dst, dpitch, src, spitch, width, height, kind);
}

extern "C" cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch,
                                         size_t width, size_t height, enum cudaMemcpyKind kind,
                                         cudaStream_t stream) {
    const char *api = "cudaMemcpy2DAsync";
    cudaError_t status = check_copy(api, dst, dpitch, src, spitch, width, height, kind);
    if (status != cudaSuccess) return status;
    return enqueue(stream, api, [=] { return copy(api, dst, dpitch, src, spitch, width, height, kind); });
}

extern "C" cudaError_t cudaMemset(void *devPtr, int value, size_t count) {
    cudaError_t status = capture_forbids("cudaMemset", capture_rule::legacy_stream);
    return status != cudaSuccess ? status : fill("cudaMemset", devPtr, value, count);
}

extern "C" cudaError_t cudaMemsetAsync(void *devPtr, int value, size_t count, cudaStream_t stream) {
    cudaError_t status = check_fill("cudaMemsetAsync", devPtr, count);
    if (status != cudaSuccess) return status;
    return enqueue(stream, "cudaMemsetAsync", [=] { return fill("cudaMemsetAsync", devPtr, value, count); });
}

/* __constant__ and __device__ variables are host variables: a symbol's address is the memory. */
extern "C" cudaError_t cudaMemcpyToSymbol(const void *symbol, const void *src, size_t count,
                                          size_t offset, enum cudaMemcpyKind kind) {
    if (kind != cudaMemcpyHostToDevice && kind != cudaMemcpyDeviceToDevice && kind != cudaMemcpyDefault)
        return set_error(cudaErrorInvalidMemcpyDirection);
    memcpy((unsigned char *)symbol + offset, src, count);
    return cudaSuccess;
}

extern "C" cudaError_t cudaMemcpyFromSymbol(void *dst, const void *symbol, size_t count,
                                            size_t offset, enum cudaMemcpyKind kind) {
    if (kind != cudaMemcpyDeviceToHost && kind != cudaMemcpyDeviceToDevice && kind != cudaMemcpyDefault)
        return set_error(cudaErrorInvalidMemcpyDirection);
    memcpy(dst, (const unsigned char *)symbol + offset, count);
    return cudaSuccess;
}
