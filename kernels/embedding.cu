/*
 * Token plus position embedding for a batch of (id, position) pairs:
 * out[i, :] = wte[ids[i], :] + wpe[positions[i], :], fp16 in and out, the add in fp32.
 * One block per pair, each thread moving 8 features with 128-bit loads and stores.
 *
 * A bad pair (id outside [0, V) or position outside [0, P)) reads nothing: its whole row is
 * written as fp16 NaN (0x7E00), which poisons everything computed from it. The host validates
 * ids and positions before the launch; the NaN row is the device's last line of defence.
 */
#include <stdint.h>

#include "kernels/cuda_check.h"
#include "kernels/half8.cuh"
#include "kernels/kernels.h"
#include "kernels/launch.h"

/* ---- kernels ---- */

static __device__ half8 nan_half8(void) {
    const __half2 nan2 = __halves2half2(__ushort_as_half(0x7E00), __ushort_as_half(0x7E00));
    return half8{{nan2, nan2, nan2, nan2}};
}

static __global__ void embedding_kernel(__half *out /* [N, C] */, const int32_t *ids /* [N] */,
                                        const int32_t *positions /* [N] */,
                                        const __half *wte /* [V, C] */, const __half *wpe /* [P, C] */,
                                        int C, int V, int P) {
    const size_t pair = blockIdx.x;
    const int32_t id = ids[pair], pos = positions[pair];
    const bool valid = id >= 0 && id < V && pos >= 0 && pos < P;
    const __half *token_row = wte + (size_t)(valid ? id : 0) * C; /* ids widened before the stride */
    const __half *position_row = wpe + (size_t)(valid ? pos : 0) * C;
    __half *out_row = out + pair * C;
    for (int c = 8 * threadIdx.x; c < C; c += 8 * blockDim.x) {
        if (!valid) {
            store_half8(out_row + c, nan_half8());
            continue;
        }
        float token[8], position[8];
        unpack_half8(load_half8(token_row + c), token);
        unpack_half8(load_half8(position_row + c), position);
        for (int j = 0; j < 8; j++) token[j] += position[j];
        store_half8(out_row + c, pack_half8(token));
    }
}

/* ---- launchers ---- */

extern "C" void launch_embedding(gpt2_f16 *out, const int32_t *ids, const int32_t *positions,
                                 const gpt2_f16 *wte, const gpt2_f16 *wpe, int N, int C, int V,
                                 int P, cudaStream_t stream) {
    const char *op = "embedding";
    LAUNCH_REQUIRE(N >= 0 && C > 0 && C % 8 == 0 && V > 0 && P > 0, op);
    if (N == 0) return;
    LAUNCH_REQUIRE(out != NULL && ids != NULL && positions != NULL && wte != NULL && wpe != NULL, op);
    LAUNCH_REQUIRE(half8_aligned(out) && half8_aligned(wte) && half8_aligned(wpe), op);
    const int vectors = C / 8, threads = vectors < 256 ? 32 * CEIL_DIV(vectors, 32) : 256;
    LAUNCH_KERNEL(embedding_kernel, N, threads, 0, stream, out, ids, positions, wte, wpe, C, V, P);
    LAUNCH_CHECK(op, stream);
}
