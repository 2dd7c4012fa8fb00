/*
 * The SIMT emulator's device functions: barriers, warp collectives, atomics and the intrinsics
 * our kernels call, with CUDA's names and semantics. Included by kernels/emu/emu.h only.
 *
 * Where CUDA defines the rounding (__fdiv_rn, __float2int_rn, ...), the result is exact. Fast
 * approximations (__expf, __fdividef, rsqrtf, ...) follow the GPU's method (for example
 * __expf(x) = exp2f(x * log2 e), whose rounded argument makes the error grow with |x| as on a
 * GPU) and stay within the error bounds of the CUDA C++ Programming Guide. They keep subnormals,
 * which the GPU's .ftz forms flush to zero.
 */
#ifndef GPT2_EMU_DEVICE_H
#define GPT2_EMU_DEVICE_H

#include <chrono>
#include <limits>

/* ---- barriers and fences ---- */

void __syncthreads(void);
int __syncthreads_count(int predicate);
int __syncthreads_and(int predicate);
int __syncthreads_or(int predicate);
void __syncwarp(unsigned mask = 0xffffffffu);

/* Blocks run in parallel on OS threads: a device-wide fence is a real one. A block's threads
 * share one OS thread and switch only at barriers, so the block-wide fence only stops the
 * compiler from moving memory accesses across it. */
inline void __threadfence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block(void) { __atomic_signal_fence(__ATOMIC_SEQ_CST); }

/* ---- warp collectives ---- */

namespace emu {

/*
 * The emulator's one warp primitive, on which the shuffles, votes and __syncwarp are built. The
 * calling lane waits until every lane named in `mask` (which must include the caller) has called
 * warp_collective with the same fn and mask. Then fn runs once, with lanes[l] = the `data` that
 * lane l passed (null for lanes outside the mask), and may read and write every lane's data.
 * A named lane that has exited or does not exist stops the run with a message; one that waits
 * elsewhere for good is a deadlock, reported once no thread of the block can run.
 */
using warp_fn = void (*)(void *const lanes[32], unsigned mask);
void warp_collective(const char *name, unsigned mask, warp_fn fn, void *data);

enum class shuffle_mode { index, up, down, bfly };
/* The raw bits of one lane's value after a shuffle (PTX shfl.sync semantics). */
uint64_t shuffle(const char *name, shuffle_mode mode, unsigned mask, uint64_t bits,
                 unsigned lane_operand, int width);
unsigned ballot(const char *name, unsigned mask, int predicate);

enum class reduce_op { add, min_signed, max_signed, min_unsigned, max_unsigned, and_, or_, xor_ };
unsigned reduce(const char *name, reduce_op op, unsigned mask, unsigned value);

/* A shuffle of any value of at most 8 bytes, as CUDA's overloads for int, float, double, __half,
 * __half2, long long... (a 64-bit shuffle is two 32-bit ones on a GPU: the same result). */
template <typename T>
T shuffle_value(const char *name, shuffle_mode mode, unsigned mask, T var, unsigned operand,
                int width) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "a shuffled value has at most 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, static_cast<const void *>(&var), sizeof var);
    bits = shuffle(name, mode, mask, bits, operand, width);
    memcpy(static_cast<void *>(&var), &bits, sizeof var);
    return var;
}

[[noreturn]] void fault(const char *format, ...) __attribute__((format(printf, 1, 2)));

} // namespace emu

template <typename T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
    return emu::shuffle_value("__shfl_sync", emu::shuffle_mode::index, mask, var,
                              (unsigned)src_lane, width);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
    return emu::shuffle_value("__shfl_up_sync", emu::shuffle_mode::up, mask, var, delta, width);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
    return emu::shuffle_value("__shfl_down_sync", emu::shuffle_mode::down, mask, var, delta, width);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
    return emu::shuffle_value("__shfl_xor_sync", emu::shuffle_mode::bfly, mask, var,
                              (unsigned)lane_mask, width);
}

inline unsigned __ballot_sync(unsigned mask, int predicate) {
    return emu::ballot("__ballot_sync", mask, predicate);
}
inline int __any_sync(unsigned mask, int predicate) {
    return emu::ballot("__any_sync", mask, predicate) != 0;
}
inline int __all_sync(unsigned mask, int predicate) {
    return emu::ballot("__all_sync", mask, predicate) == mask;
}
/* The lanes of the caller's warp that reach __activemask while every other live lane of the warp
 * waits elsewhere or has exited: all live lanes in converged code, the lanes of a branch in
 * divergent code (kernels/emu/README.md). */
unsigned __activemask(void);

/* sm_80 warp reductions (redux.sync). */
inline unsigned __reduce_add_sync(unsigned mask, unsigned value) {
    return emu::reduce("__reduce_add_sync", emu::reduce_op::add, mask, value);
}
inline int __reduce_add_sync(unsigned mask, int value) {
    return (int)emu::reduce("__reduce_add_sync", emu::reduce_op::add, mask, (unsigned)value);
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned value) {
    return emu::reduce("__reduce_min_sync", emu::reduce_op::min_unsigned, mask, value);
}
inline int __reduce_min_sync(unsigned mask, int value) {
    return (int)emu::reduce("__reduce_min_sync", emu::reduce_op::min_signed, mask, (unsigned)value);
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned value) {
    return emu::reduce("__reduce_max_sync", emu::reduce_op::max_unsigned, mask, value);
}
inline int __reduce_max_sync(unsigned mask, int value) {
    return (int)emu::reduce("__reduce_max_sync", emu::reduce_op::max_signed, mask, (unsigned)value);
}
inline unsigned __reduce_and_sync(unsigned mask, unsigned value) {
    return emu::reduce("__reduce_and_sync", emu::reduce_op::and_, mask, value);
}
inline unsigned __reduce_or_sync(unsigned mask, unsigned value) {
    return emu::reduce("__reduce_or_sync", emu::reduce_op::or_, mask, value);
}
inline unsigned __reduce_xor_sync(unsigned mask, unsigned value) {
    return emu::reduce("__reduce_xor_sync", emu::reduce_op::xor_, mask, value);
}

/* ---- atomics: real hardware atomics, since blocks run in parallel ---- */

namespace emu {

/* *address = next(*address) atomically, by compare-and-swap on its bits; returns the old value. */
template <typename T, typename F>
T atomic_update(T *address, F next) {
    using word = std::conditional_t<sizeof(T) == 2, uint16_t,
                                    std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;
    static_assert(sizeof(T) == sizeof(word), "atomics on 2, 4 or 8 bytes");
    word *bits = reinterpret_cast<word *>(address);
    word expected = __atomic_load_n(bits, __ATOMIC_SEQ_CST);
    for (;;) {
        T old_value{};
        memcpy(static_cast<void *>(&old_value), &expected, sizeof expected);
        T new_value = next(old_value);
        word desired;
        memcpy(&desired, static_cast<const void *>(&new_value), sizeof desired);
        if (__atomic_compare_exchange_n(bits, &expected, desired, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            return old_value;
    }
}

/* atom.add.f32 flushes subnormal inputs and results to sign-preserving zero (PTX ISA). */
inline float flush_subnormal(float x) { return fabsf(x) < 0x1p-126f ? copysignf(0.0f, x) : x; }

} // namespace emu

inline int atomicAdd(int *address, int val) { return __atomic_fetch_add(address, val, __ATOMIC_SEQ_CST); }
inline unsigned atomicAdd(unsigned *address, unsigned val) {
    return __atomic_fetch_add(address, val, __ATOMIC_SEQ_CST);
}
inline unsigned long long atomicAdd(unsigned long long *address, unsigned long long val) {
    return __atomic_fetch_add(address, val, __ATOMIC_SEQ_CST);
}
inline float atomicAdd(float *address, float val) {
    return emu::atomic_update(address, [val](float old) {
        return emu::flush_subnormal(emu::flush_subnormal(old) + emu::flush_subnormal(val));
    });
}
inline double atomicAdd(double *address, double val) {
    return emu::atomic_update(address, [val](double old) { return old + val; });
}
/* Rounded to nearest per element (float has enough bits for a correctly rounded fp16 sum). */
inline __half2 atomicAdd(__half2 *address, __half2 val) {
    return emu::atomic_update(address, [val](__half2 old) { return __hadd2(old, val); });
}
inline __half atomicAdd(__half *address, __half val) {
    return emu::atomic_update(address, [val](__half old) { return __hadd(old, val); });
}
inline __nv_bfloat162 atomicAdd(__nv_bfloat162 *address, __nv_bfloat162 val) {
    return emu::atomic_update(address, [val](__nv_bfloat162 old) { return __hadd2(old, val); });
}
inline __nv_bfloat16 atomicAdd(__nv_bfloat16 *address, __nv_bfloat16 val) {
    return emu::atomic_update(address, [val](__nv_bfloat16 old) { return __hadd(old, val); });
}
inline int atomicSub(int *address, int val) { return __atomic_fetch_sub(address, val, __ATOMIC_SEQ_CST); }
inline unsigned atomicSub(unsigned *address, unsigned val) {
    return __atomic_fetch_sub(address, val, __ATOMIC_SEQ_CST);
}

inline int atomicExch(int *address, int val) { return __atomic_exchange_n(address, val, __ATOMIC_SEQ_CST); }
inline unsigned atomicExch(unsigned *address, unsigned val) {
    return __atomic_exchange_n(address, val, __ATOMIC_SEQ_CST);
}
inline unsigned long long atomicExch(unsigned long long *address, unsigned long long val) {
    return __atomic_exchange_n(address, val, __ATOMIC_SEQ_CST);
}
inline float atomicExch(float *address, float val) {
    return emu::atomic_update(address, [val](float) { return val; });
}

template <typename T>
T emu_atomic_min(T *address, T val) {
    return emu::atomic_update(address, [val](T old) { return val < old ? val : old; });
}
template <typename T>
T emu_atomic_max(T *address, T val) {
    return emu::atomic_update(address, [val](T old) { return val > old ? val : old; });
}
inline int atomicMin(int *address, int val) { return emu_atomic_min(address, val); }
inline unsigned atomicMin(unsigned *address, unsigned val) { return emu_atomic_min(address, val); }
inline long long atomicMin(long long *address, long long val) { return emu_atomic_min(address, val); }
inline unsigned long long atomicMin(unsigned long long *address, unsigned long long val) {
    return emu_atomic_min(address, val);
}
inline int atomicMax(int *address, int val) { return emu_atomic_max(address, val); }
inline unsigned atomicMax(unsigned *address, unsigned val) { return emu_atomic_max(address, val); }
inline long long atomicMax(long long *address, long long val) { return emu_atomic_max(address, val); }
inline unsigned long long atomicMax(unsigned long long *address, unsigned long long val) {
    return emu_atomic_max(address, val);
}

/* ((old >= val) ? 0 : old + 1) and (((old == 0) || (old > val)) ? val : old - 1). */
inline unsigned atomicInc(unsigned *address, unsigned val) {
    return emu::atomic_update(address, [val](unsigned old) { return old >= val ? 0u : old + 1; });
}
inline unsigned atomicDec(unsigned *address, unsigned val) {
    return emu::atomic_update(address,
                              [val](unsigned old) { return old == 0 || old > val ? val : old - 1; });
}

template <typename T>
T emu_atomic_cas(T *address, T compare, T val) {
    __atomic_compare_exchange_n(address, &compare, val, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return compare; /* the old value, whether or not it matched */
}
inline int atomicCAS(int *address, int compare, int val) { return emu_atomic_cas(address, compare, val); }
inline unsigned atomicCAS(unsigned *address, unsigned compare, unsigned val) {
    return emu_atomic_cas(address, compare, val);
}
inline unsigned long long atomicCAS(unsigned long long *address, unsigned long long compare,
                                    unsigned long long val) {
    return emu_atomic_cas(address, compare, val);
}
inline unsigned short atomicCAS(unsigned short *address, unsigned short compare, unsigned short val) {
    return emu_atomic_cas(address, compare, val);
}

inline int atomicAnd(int *address, int val) { return __atomic_fetch_and(address, val, __ATOMIC_SEQ_CST); }
inline unsigned atomicAnd(unsigned *address, unsigned val) {
    return __atomic_fetch_and(address, val, __ATOMIC_SEQ_CST);
}
inline unsigned long long atomicAnd(unsigned long long *address, unsigned long long val) {
    return __atomic_fetch_and(address, val, __ATOMIC_SEQ_CST);
}
inline int atomicOr(int *address, int val) { return __atomic_fetch_or(address, val, __ATOMIC_SEQ_CST); }
inline unsigned atomicOr(unsigned *address, unsigned val) {
    return __atomic_fetch_or(address, val, __ATOMIC_SEQ_CST);
}
inline unsigned long long atomicOr(unsigned long long *address, unsigned long long val) {
    return __atomic_fetch_or(address, val, __ATOMIC_SEQ_CST);
}
inline int atomicXor(int *address, int val) { return __atomic_fetch_xor(address, val, __ATOMIC_SEQ_CST); }
inline unsigned atomicXor(unsigned *address, unsigned val) {
    return __atomic_fetch_xor(address, val, __ATOMIC_SEQ_CST);
}
inline unsigned long long atomicXor(unsigned long long *address, unsigned long long val) {
    return __atomic_fetch_xor(address, val, __ATOMIC_SEQ_CST);
}

/* ---- float intrinsics: exactly rounded ---- */

/* -ffp-contract=off (ISO C++ mode) keeps each of these one IEEE operation. */
inline float __fadd_rn(float x, float y) { return x + y; }
inline float __fsub_rn(float x, float y) { return x - y; }
inline float __fmul_rn(float x, float y) { return x * y; }
inline float __fdiv_rn(float x, float y) { return x / y; }
inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline double __dadd_rn(double x, double y) { return x + y; }
inline double __dmul_rn(double x, double y) { return x * y; }
inline double __ddiv_rn(double x, double y) { return x / y; }

/* Clamps to [0, 1]; NaN becomes 0. */
inline float __saturatef(float x) { return x >= 1.0f ? 1.0f : x > 0.0f ? x : 0.0f; }

/* ---- float intrinsics: fast approximations (CUDA's maximum errors in ulp in comments) ---- */

namespace emu {
inline float fast_exp(float x) { return exp2f(x * 1.44269504f); }     /* 2 + floor(|1.173 x|) */
inline float fast_exp10(float x) { return exp2f(x * 3.32192809f); }   /* 2 + floor(|2.97 x|) */
inline float fast_log2(float x) { return log2f(x); }                  /* 2^-22 abs, or 2 ulp */
inline float fast_log(float x) { return log2f(x) * 0.693147181f; }    /* 2^-21.41 abs, or 3 */
inline float fast_log10(float x) { return log2f(x) * 0.301029996f; }  /* 2^-24 abs, or 3 */
inline float fast_pow(float x, float y) { return exp2f(y * log2f(x)); }
inline float fast_sin(float x) { return sinf(x); } /* 2^-21.41 abs in [-pi, pi] */
inline float fast_cos(float x) { return cosf(x); }
inline float fast_tan(float x) { return sinf(x) / cosf(x); }
inline void fast_sincos(float x, float *s, float *c) {
    *s = sinf(x);
    *c = cosf(x);
}
} // namespace emu

/* glibc's math.h declares (without defining) these names for itself, so they are macros here. */
#define __expf(x) emu::fast_exp(x)
#define __exp10f(x) emu::fast_exp10(x)
#define __log2f(x) emu::fast_log2(x)
#define __logf(x) emu::fast_log(x)
#define __log10f(x) emu::fast_log10(x)
#define __powf(x, y) emu::fast_pow(x, y)
#define __sinf(x) emu::fast_sin(x)
#define __cosf(x) emu::fast_cos(x)
#define __tanf(x) emu::fast_tan(x)
#define __sincosf(x, s, c) emu::fast_sincos(x, s, c)

/* x * (1 / y), 2 ulp; as on the GPU, 0 (NaN for infinite x) when 2^126 < |y| < 2^128. */
inline float __fdividef(float x, float y) {
    return x * (fabsf(y) > 0x1p126f ? copysignf(0.0f, y) : 1.0f / y);
}
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); } /* 2 ulp */
inline double rsqrt(double x) { return 1.0 / sqrt(x); }  /* 1 ulp */

/* ---- conversions: cvt.rni/rzi/rmi/rpi, saturating, NaN to 0 ---- */

namespace emu {
template <typename I>
I float_to_integer(double rounded) {
    if (rounded != rounded) return 0;
    if (rounded <= (double)std::numeric_limits<I>::min()) return std::numeric_limits<I>::min();
    if (rounded >= (double)std::numeric_limits<I>::max()) return std::numeric_limits<I>::max();
    return (I)rounded;
}
} // namespace emu

inline int __float2int_rn(float x) { return emu::float_to_integer<int>(nearbyintf(x)); }
inline int __float2int_rz(float x) { return emu::float_to_integer<int>(truncf(x)); }
inline int __float2int_rd(float x) { return emu::float_to_integer<int>(floorf(x)); }
inline int __float2int_ru(float x) { return emu::float_to_integer<int>(ceilf(x)); }
inline unsigned __float2uint_rn(float x) { return emu::float_to_integer<unsigned>(nearbyintf(x)); }
inline unsigned __float2uint_rz(float x) { return emu::float_to_integer<unsigned>(truncf(x)); }
inline unsigned __float2uint_rd(float x) { return emu::float_to_integer<unsigned>(floorf(x)); }
inline unsigned __float2uint_ru(float x) { return emu::float_to_integer<unsigned>(ceilf(x)); }
inline long long __float2ll_rn(float x) { return emu::float_to_integer<long long>(nearbyintf(x)); }
inline long long __float2ll_rz(float x) { return emu::float_to_integer<long long>(truncf(x)); }
inline int __double2int_rn(double x) { return emu::float_to_integer<int>(nearbyint(x)); }
inline float __int2float_rn(int x) { return (float)x; }
inline float __uint2float_rn(unsigned x) { return (float)x; }
inline float __ll2float_rn(long long x) { return (float)x; }

inline int __float_as_int(float x) { int i; memcpy(&i, &x, sizeof i); return i; }
inline unsigned __float_as_uint(float x) { unsigned u; memcpy(&u, &x, sizeof u); return u; }
inline float __int_as_float(int i) { float x; memcpy(&x, &i, sizeof x); return x; }
inline float __uint_as_float(unsigned u) { float x; memcpy(&x, &u, sizeof x); return x; }
inline long long __double_as_longlong(double x) { long long i; memcpy(&i, &x, sizeof i); return i; }
inline double __longlong_as_double(long long i) { double x; memcpy(&x, &i, sizeof x); return x; }

/* ---- integer intrinsics ---- */

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; i++) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
inline unsigned __umulhi(unsigned x, unsigned y) { return (unsigned)(((uint64_t)x * y) >> 32); }
inline int __mulhi(int x, int y) { return (int)(((int64_t)x * y) >> 32); }
inline unsigned long long __umul64hi(unsigned long long x, unsigned long long y) {
    return (unsigned long long)(((unsigned __int128)x * y) >> 64);
}

/*
 * CUDA's min and max for any two arithmetic types: the usual arithmetic conversions pick the
 * type (min(int, unsigned) is unsigned, as in CUDA's overloads), and floating point follows
 * fminf/fmaxf (a NaN operand loses). Global templates, so std::min and std::max are untouched.
 */
template <typename A, typename B,
          typename = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
constexpr std::common_type_t<A, B> min(A a, B b) {
    using T = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point_v<T>) return fmin((T)a, (T)b);
    else return (T)a < (T)b ? (T)a : (T)b;
}
template <typename A, typename B,
          typename = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
constexpr std::common_type_t<A, B> max(A a, B b) {
    using T = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point_v<T>) return fmax((T)a, (T)b);
    else return (T)a > (T)b ? (T)a : (T)b;
}

/* ---- loads and stores with cache hints: plain accesses here ---- */

template <typename T> T __ldg(const T *p) { return *p; }
template <typename T> T __ldcg(const T *p) { return *p; }
template <typename T> T __ldca(const T *p) { return *p; }
template <typename T> T __ldcs(const T *p) { return *p; }
template <typename T> T __ldlu(const T *p) { return *p; }
template <typename T> T __ldcv(const T *p) { return *p; }
template <typename T> void __stcg(T *p, T value) { *p = value; }
template <typename T> void __stcs(T *p, T value) { *p = value; }
template <typename T> void __stwb(T *p, T value) { *p = value; }
template <typename T> void __stwt(T *p, T value) { *p = value; }

/* ---- the rest ---- */

/* Host nanoseconds: a kernel's own timing in the emulator means nothing about a GPU. */
inline long long clock64(void) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}
inline void __nanosleep(unsigned) {}
[[noreturn]] inline void __trap(void) { emu::fault("the kernel called __trap()"); }

#endif
