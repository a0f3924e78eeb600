// Portability macros for the code that runs in both drivers' loops: the loss
// and activation headers, the scalar math (scalar_math.h) and the CPU vector
// math (csrc/cpu/vec/).
#pragma once

// The per-element math is always inlined into the drivers' loops, on the CPU
// as on the GPU. Left to GCC's heuristics, the larger activation bodies (GELU,
// SiLU, sigmoid, ELU's backward) became out-of-line functions called once per
// vector, which reload every polynomial constant on each call.
// LOSSEXT_ALWAYS_INLINE marks the CPU vector math (csrc/cpu/vec/) the same
// way: after a change elsewhere, GCC once left exp and the normal CDF as calls
// through the PLT, which slowed exact GELU's forward by a third.
// LOSSEXT_INLINE_LAMBDA does it for a lambda (after its parameter list): the
// CPU row driver's generic per-row passes were otherwise instantiated out of
// line and called once per row, which doubled the time of rows of 10 classes.
#if defined(__GNUC__)
#define LOSSEXT_ALWAYS_INLINE inline __attribute__((always_inline))
#define LOSSEXT_INLINE_LAMBDA __attribute__((always_inline))
#else
#define LOSSEXT_ALWAYS_INLINE inline
#define LOSSEXT_INLINE_LAMBDA
#endif
#if defined(__CUDACC__) || defined(__HIPCC__)
#define LOSSEXT_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define LOSSEXT_HOST_DEVICE LOSSEXT_ALWAYS_INLINE
#endif
// LOSSEXT_UNROLL unrolls the next loop in device code: nvcc's #pragma unroll,
// which GCC does not know (it warns, and -Werror builds of host-device headers fail).
#if defined(__CUDACC__) || defined(__HIPCC__)
#define LOSSEXT_UNROLL _Pragma("unroll")
#else
#define LOSSEXT_UNROLL
#endif
