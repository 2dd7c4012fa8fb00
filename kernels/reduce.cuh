/*
 * Warp and block reductions for kernels whose blockDim.x is a multiple of 32. Every thread of
 * the block gets the same result, combined in a fixed order whatever the thread schedule, so
 * the result is deterministic (and bit-identical between runs) even for floating point.
 */
#ifndef GPT2_REDUCE_CUH
#define GPT2_REDUCE_CUH

#define FULL_WARP_MASK 0xffffffffu

struct sum_op {
    template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};

struct min_op {
    template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return b < a ? b : a; }
};

struct max_op {
    template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return b > a ? b : a; }
};

/* The butterfly: after it every lane holds op over the warp's 32 values. */
template <class T, class Op> static __device__ __forceinline__ T warp_reduce(T v, Op op) {
    for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(FULL_WARP_MASK, v, offset));
    return v;
}

/*
 * op over the block's values, in every thread. scratch ([32] in shared memory) is read after
 * the barrier inside; it may be written again only after a later __syncthreads().
 */
template <class T, class Op> static __device__ T block_reduce(T v, T *scratch /* [32] */, Op op) {
    v = warp_reduce(v, op);
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
    __syncthreads();
    T result = scratch[0];
    for (unsigned w = 1; w < blockDim.x >> 5; w++) result = op(result, scratch[w]);
    return result;
}

#endif
