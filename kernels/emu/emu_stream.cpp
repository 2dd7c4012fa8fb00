/*
 * The SIMT emulator's CUDA runtime, part 2: streams, stream capture and graphs, events, and the
 * launch check.
 *
 * Work runs when it is issued, in issue order, whatever its stream: a stream never has work in
 * flight, so synchronizing is free and event times are host wall-clock times. While a stream is
 * captured, its work (launches, async copies and fills, event records, cuBLAS calls) is recorded
 * instead; an instantiated graph replays it in order. The rules a GPU enforces during capture
 * are enforced here too, so that a capture that would fail on a GPU fails in CI.
 */
#include "kernels/emu/emu_internal.h"

#include <stdio.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace {

struct recorded_op {
    const char *what;
    emu::stream_op op;
};

struct capture_state {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
    unsigned long long id = 0;
    std::thread::id thread; /* that began the capture */
    cudaGraph_t graph = nullptr;
};

} // namespace

/* The runtime's opaque handles (driver_types.h declares them). */
struct CUgraph_st {
    std::vector<recorded_op> ops;
};
struct CUgraphExec_st {
    std::vector<recorded_op> ops;
};
struct CUstream_st {
    unsigned flags;
    capture_state capture;
};
struct CUevent_st {
    unsigned flags;
    bool recorded;
    std::chrono::steady_clock::time_point time;
    CUstream_st *captured_in; /* the stream whose capture recorded it last, if any */
};

namespace emu {
namespace {

std::mutex capture_mutex; /* guards every stream's capture state and the list below */
std::vector<CUstream_st *> capturing; /* streams between BeginCapture and EndCapture */
unsigned long long capture_ids;
thread_local cudaStreamCaptureMode thread_capture_mode = cudaStreamCaptureModeGlobal;
CUstream_st legacy_stream = {cudaStreamDefault, {}};

bool is_legacy(cudaStream_t stream) {
    return stream == nullptr || stream == cudaStreamLegacy || stream == cudaStreamPerThread;
}

CUstream_st &stream_of(cudaStream_t stream) { return is_legacy(stream) ? legacy_stream : *stream; }

const char *mode_name(cudaStreamCaptureMode mode) {
    return mode == cudaStreamCaptureModeGlobal        ? "global"
           : mode == cudaStreamCaptureModeThreadLocal ? "thread-local"
                                                      : "relaxed";
}

void invalidate(CUstream_st &stream) {
    if (stream.capture.status == cudaStreamCaptureStatusActive)
        stream.capture.status = cudaStreamCaptureStatusInvalidated;
}

/* Whether `rule` forbids a call while `stream` is being captured. Call with capture_mutex held. */
bool forbids(capture_rule rule, const CUstream_st &stream) {
    const capture_state &capture = stream.capture;
    if (capture.status != cudaStreamCaptureStatusActive) return false;
    switch (rule) {
    case capture_rule::unsafe_call:
        return thread_capture_mode != cudaStreamCaptureModeRelaxed &&
               (capture.mode == cudaStreamCaptureModeGlobal ||
                (capture.mode == cudaStreamCaptureModeThreadLocal &&
                 capture.thread == std::this_thread::get_id()));
    case capture_rule::legacy_stream: return (stream.flags & cudaStreamNonBlocking) == 0;
    case capture_rule::synchronize: return true;
    }
    return false;
}

/* Synchronizing with (or querying) a stream that is being captured is not allowed. */
cudaError_t check_sync(cudaStream_t handle, const char *api) {
    if (is_legacy(handle)) return capture_forbids(api, capture_rule::legacy_stream);
    std::lock_guard<std::mutex> lock(capture_mutex);
    if (handle->capture.status == cudaStreamCaptureStatusNone) return cudaSuccess;
    fprintf(stderr, "emu: %s on stream %p, which is being captured: not allowed on a GPU; the "
                    "capture is invalidated\n", api, (void *)handle);
    invalidate(*handle);
    return set_error(cudaErrorStreamCaptureUnsupported);
}

/* Why a launch fails on a GPU (writing the reason into `why`), or cudaSuccess. */
cudaError_t check_launch(const kernel_launch &launch, char *why, size_t size) {
    const dim3 grid = launch.grid, block = launch.block;
    const unsigned block_dims[3] = {block.x, block.y, block.z}, grid_dims[3] = {grid.x, grid.y, grid.z};
    for (int i = 0; i < 3; i++) {
        if (block_dims[i] == 0 || grid_dims[i] == 0) {
            snprintf(why, size, "a zero-sized grid or block");
            return cudaErrorInvalidConfiguration;
        }
        if (block_dims[i] > max_block_dim[i]) {
            snprintf(why, size, "block dimension %c is %u, over its limit of %u", "xyz"[i],
                     block_dims[i], max_block_dim[i]);
            return cudaErrorInvalidConfiguration;
        }
        if (grid_dims[i] > max_grid_dim[i]) {
            snprintf(why, size, "grid dimension %c is %u, over its limit of %u", "xyz"[i],
                     grid_dims[i], max_grid_dim[i]);
            return cudaErrorInvalidConfiguration;
        }
    }
    const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (threads > max_threads_per_block) {
        snprintf(why, size, "%llu threads per block, over the limit of %u", threads,
                 max_threads_per_block);
        return cudaErrorInvalidConfiguration;
    }
    const size_t limit = dynamic_shared_limit(launch.function);
    if (launch.shared_bytes > limit) {
        snprintf(why, size, "%zu bytes of dynamic shared memory, over the kernel's limit of %zu (raise "
                            "it with cudaFuncSetAttribute(kernel, "
                            "cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), up to %zu)",
                 launch.shared_bytes, limit, optin_dynamic_shared);
        return cudaErrorInvalidValue;
    }
    return cudaSuccess;
}

} // namespace

/* ---- shared with the other parts (emu.h, emu_internal.h) ---- */

cudaError_t capture_forbids(const char *api, capture_rule rule) {
    std::lock_guard<std::mutex> lock(capture_mutex);
    cudaError_t status = cudaSuccess;
    for (CUstream_st *stream : capturing) {
        if (!forbids(rule, *stream)) continue;
        fprintf(stderr, "emu: %s while stream %p is being captured (%s mode): not allowed on a GPU; "
                        "the capture is invalidated\n", api, (void *)stream, mode_name(stream->capture.mode));
        invalidate(*stream);
        status = rule == capture_rule::legacy_stream ? cudaErrorStreamCaptureImplicit
                                                      : cudaErrorStreamCaptureUnsupported;
    }
    return set_error(status);
}

cudaError_t enqueue(cudaStream_t handle, const char *what, stream_op op) {
    if (is_legacy(handle)) {
        cudaError_t status = capture_forbids(what, capture_rule::legacy_stream);
        if (status != cudaSuccess) return status;
    }
    CUstream_st &stream = stream_of(handle);
    {
        std::lock_guard<std::mutex> lock(capture_mutex);
        if (stream.capture.status == cudaStreamCaptureStatusActive) {
            stream.capture.graph->ops.push_back({what, std::move(op)});
            return cudaSuccess;
        }
        if (stream.capture.status == cudaStreamCaptureStatusInvalidated)
            return set_error(cudaErrorStreamCaptureInvalidated);
    }
    return set_error(op());
}

void launch(kernel_launch launch, cudaStream_t stream) {
    char why[320];
    const cudaError_t error = check_launch(launch, why, sizeof why);
    if (error != cudaSuccess) {
        fprintf(stderr, "emu: launch of %s (grid (%u,%u,%u), block (%u,%u,%u), %zu bytes of dynamic "
                        "shared memory) fails: %s\n",
                launch.name, launch.grid.x, launch.grid.y, launch.grid.z, launch.block.x,
                launch.block.y, launch.block.z, launch.shared_bytes, why);
        set_error(error);
        std::lock_guard<std::mutex> lock(capture_mutex);
        invalidate(stream_of(stream)); /* a failed launch during capture spoils the capture */
        return;
    }
    auto checked = std::make_shared<const kernel_launch>(std::move(launch));
    enqueue(stream, checked->name, [checked] {
        run_grid(*checked);
        return cudaSuccess;
    });
}

} // namespace emu

using namespace emu;

/* ---- streams ---- */

extern "C" cudaError_t cudaStreamCreateWithFlags(cudaStream_t *pStream, unsigned int flags) {
    *pStream = new CUstream_st{flags, {}};
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamCreate(cudaStream_t *pStream) {
    return cudaStreamCreateWithFlags(pStream, cudaStreamDefault);
}

extern "C" cudaError_t cudaStreamCreateWithPriority(cudaStream_t *pStream, unsigned int flags, int priority) {
    return cudaStreamCreateWithFlags(pStream, flags);
}

extern "C" cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    if (is_legacy(stream)) return set_error(cudaErrorInvalidResourceHandle);
    {
        std::lock_guard<std::mutex> lock(capture_mutex);
        capturing.erase(std::remove(capturing.begin(), capturing.end(), stream), capturing.end());
        delete stream->capture.graph;
    }
    delete stream;
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    return check_sync(stream, "cudaStreamSynchronize");
}

extern "C" cudaError_t cudaStreamQuery(cudaStream_t stream) { return check_sync(stream, "cudaStreamQuery"); }

extern "C" cudaError_t cudaStreamGetFlags(cudaStream_t hStream, unsigned int *flags) {
    *flags = stream_of(hStream).flags;
    return cudaSuccess;
}

/* Work already ran in issue order; only a cross-stream capture (fork and join through events,
 * which a GPU allows) is beyond the emulator. */
extern "C" cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
    std::lock_guard<std::mutex> lock(capture_mutex);
    if (event->captured_in != nullptr && event->captured_in != &stream_of(stream)) {
        fprintf(stderr, "emu: cudaStreamWaitEvent on an event recorded in another stream's capture: "
                        "cross-stream capture is not emulated\n");
        return set_error(cudaErrorNotSupported);
    }
    return cudaSuccess;
}

extern "C" cudaError_t cudaDeviceSynchronize(void) {
    return capture_forbids("cudaDeviceSynchronize", capture_rule::synchronize);
}

/* ---- stream capture ---- */

extern "C" cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode) {
    if (is_legacy(stream)) return set_error(cudaErrorStreamCaptureUnsupported);
    std::lock_guard<std::mutex> lock(capture_mutex);
    capture_state &capture = stream->capture;
    if (capture.status != cudaStreamCaptureStatusNone) return set_error(cudaErrorIllegalState);
    capture.status = cudaStreamCaptureStatusActive;
    capture.mode = mode;
    capture.id = ++capture_ids;
    capture.thread = std::this_thread::get_id();
    capture.graph = new CUgraph_st;
    capturing.push_back(stream);
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *pGraph) {
    *pGraph = nullptr;
    if (is_legacy(stream)) return set_error(cudaErrorIllegalState);
    std::lock_guard<std::mutex> lock(capture_mutex);
    capture_state &capture = stream->capture;
    if (capture.status == cudaStreamCaptureStatusNone) return set_error(cudaErrorIllegalState);
    if (capture.mode == cudaStreamCaptureModeThreadLocal && capture.thread != std::this_thread::get_id())
        return set_error(cudaErrorStreamCaptureWrongThread);
    capturing.erase(std::remove(capturing.begin(), capturing.end(), stream), capturing.end());
    const bool valid = capture.status == cudaStreamCaptureStatusActive;
    if (valid) *pGraph = capture.graph;
    else delete capture.graph;
    capture = capture_state();
    return valid ? cudaSuccess : set_error(cudaErrorStreamCaptureInvalidated);
}

extern "C" cudaError_t cudaStreamIsCapturing(cudaStream_t stream,
                                             enum cudaStreamCaptureStatus *pCaptureStatus) {
    std::lock_guard<std::mutex> lock(capture_mutex);
    *pCaptureStatus = stream_of(stream).capture.status;
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamGetCaptureInfo(cudaStream_t stream,
                                                enum cudaStreamCaptureStatus *captureStatus_out,
                                                unsigned long long *id_out, cudaGraph_t *graph_out,
                                                const cudaGraphNode_t **dependencies_out,
                                                const cudaGraphEdgeData **edgeData_out,
                                                size_t *numDependencies_out) {
    std::lock_guard<std::mutex> lock(capture_mutex);
    const capture_state &capture = stream_of(stream).capture;
    *captureStatus_out = capture.status;
    const bool active = capture.status == cudaStreamCaptureStatusActive;
    if (id_out != nullptr && active) *id_out = capture.id;
    if (graph_out != nullptr && active) *graph_out = capture.graph;
    if (dependencies_out != nullptr && active) *dependencies_out = nullptr; /* nodes are not handles */
    if (edgeData_out != nullptr && active) *edgeData_out = nullptr;
    if (numDependencies_out != nullptr && active) *numDependencies_out = 0;
    return cudaSuccess;
}

extern "C" cudaError_t cudaThreadExchangeStreamCaptureMode(enum cudaStreamCaptureMode *mode) {
    std::swap(*mode, thread_capture_mode);
    return cudaSuccess;
}

/* ---- graphs: a captured list of operations, replayed in order ---- */

extern "C" cudaError_t cudaGraphCreate(cudaGraph_t *pGraph, unsigned int flags) {
    *pGraph = new CUgraph_st;
    return cudaSuccess;
}

/* The node count only: the emulator's nodes are not handles (nodes must be NULL). */
extern "C" cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t *nodes, size_t *numNodes) {
    if (nodes != nullptr) {
        fprintf(stderr, "emu: cudaGraphGetNodes: node handles are not emulated (pass nodes = NULL)\n");
        return set_error(cudaErrorNotSupported);
    }
    *numNodes = graph->ops.size();
    return cudaSuccess;
}

extern "C" cudaError_t cudaGraphInstantiate(cudaGraphExec_t *pGraphExec, cudaGraph_t graph,
                                            unsigned long long flags) {
    *pGraphExec = new CUgraphExec_st{graph->ops};
    return cudaSuccess;
}

extern "C" cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t *pGraphExec, cudaGraph_t graph,
                                                     unsigned long long flags) {
    return cudaGraphInstantiate(pGraphExec, graph, flags);
}

extern "C" cudaError_t cudaGraphLaunch(cudaGraphExec_t graphExec, cudaStream_t stream) {
    if (is_legacy(stream)) {
        cudaError_t status = capture_forbids("cudaGraphLaunch", capture_rule::legacy_stream);
        if (status != cudaSuccess) return status;
    } else {
        std::lock_guard<std::mutex> lock(capture_mutex);
        if (stream->capture.status != cudaStreamCaptureStatusNone) {
            fprintf(stderr, "emu: cudaGraphLaunch into a stream capture (a child graph) is not emulated\n");
            invalidate(*stream);
            return set_error(cudaErrorNotSupported);
        }
    }
    for (const recorded_op &op : graphExec->ops) {
        cudaError_t status = op.op();
        if (status != cudaSuccess) return set_error(status);
    }
    return cudaSuccess;
}

extern "C" cudaError_t cudaGraphExecDestroy(cudaGraphExec_t graphExec) {
    delete graphExec;
    return cudaSuccess;
}

extern "C" cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    delete graph;
    return cudaSuccess;
}

/* ---- events: host wall-clock times, said so once ---- */

extern "C" cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags) {
    *event = new CUevent_st{flags, false, {}, nullptr};
    return cudaSuccess;
}

extern "C" cudaError_t cudaEventCreate(cudaEvent_t *event) {
    return cudaEventCreateWithFlags(event, cudaEventDefault);
}

extern "C" cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    {
        std::lock_guard<std::mutex> lock(capture_mutex);
        CUstream_st &on = stream_of(stream);
        event->captured_in = on.capture.status == cudaStreamCaptureStatusActive ? &on : nullptr;
    }
    return enqueue(stream, "cudaEventRecord", [event] {
        event->recorded = true;
        event->time = std::chrono::steady_clock::now();
        return cudaSuccess;
    });
}

extern "C" cudaError_t cudaEventSynchronize(cudaEvent_t event) { return cudaSuccess; }

extern "C" cudaError_t cudaEventQuery(cudaEvent_t event) { return cudaSuccess; }

extern "C" cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    if (!start->recorded || !end->recorded || ((start->flags | end->flags) & cudaEventDisableTiming))
        return set_error(cudaErrorInvalidResourceHandle);
    static std::once_flag said;
    std::call_once(said, [] {
        fprintf(stderr, "emu: event times are host wall-clock times of the SIMT emulator, not GPU times\n");
    });
    *ms = std::chrono::duration<float, std::milli>(end->time - start->time).count();
    return cudaSuccess;
}

extern "C" cudaError_t cudaEventDestroy(cudaEvent_t event) {
    delete event;
    return cudaSuccess;
}
