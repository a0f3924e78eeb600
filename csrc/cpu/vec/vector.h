// The float vector of the CPU drivers, on GCC/Clang vector extensions: 16
// floats when the build targets AVX-512, 8 otherwise, so the same source
// compiles to AVX-512, to AVX2+FMA (setup.py adds the flags the build machine
// has) or to SSE2 pairs. It supplies the overloads of where/maximum/absolute
// that the loss and activation headers call (csrc/common/scalar_math.h), so
// their per-element math runs a vector at a time; math.h adds exp, log, pow,
// tanh and the normal CDF, memory.h the loads and stores.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "common/macros.h"
#include "common/scalar_math.h"

namespace lossext {
namespace cpu {

// The scalar overloads (common/scalar_math.h) stay visible beside the vector
// ones below, for the drivers' scalar tails and the double path.
using lossext::absolute;
using lossext::maximum;
using lossext::where;

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#else
constexpr int kVectorBytes = 32;
#endif

typedef float float_vector_t __attribute__((vector_size(kVectorBytes)));
typedef int32_t int_vector_t __attribute__((vector_size(kVectorBytes)));
typedef uint32_t uint_vector_t __attribute__((vector_size(kVectorBytes)));
typedef uint16_t uint16_vector_t __attribute__((vector_size(kVectorBytes / 2)));

struct VecMask {
  int_vector_t bits;
};

struct VecF {
  static constexpr int kWidth = kVectorBytes / 4;
  float_vector_t v;

  VecF() = default;
  VecF(float scalar) : v(float_vector_t{} + scalar) {}  // broadcast, as the headers' V(c) expects
  explicit VecF(float_vector_t raw) : v(raw) {}

  static VecF load(const float* p) {
    float_vector_t r;
    std::memcpy(&r, p, sizeof(r));
    return VecF(r);
  }
  void store(float* p) const { std::memcpy(p, &v, sizeof(v)); }

  float sum() const {
    // Pairwise, so the order (and hence the rounding) is fixed.
    float lanes[kWidth];
    std::memcpy(lanes, &v, sizeof(lanes));
    for (int half = kWidth / 2; half > 0; half /= 2) {
      for (int i = 0; i < half; ++i) lanes[i] += lanes[i + half];
    }
    return lanes[0];
  }
  float max() const {
    float m = v[0];
    for (int i = 1; i < kWidth; ++i) m = v[i] > m || v[i] != v[i] ? v[i] : m;
    return m;
  }
};

LOSSEXT_ALWAYS_INLINE VecF operator+(VecF a, VecF b) { return VecF(a.v + b.v); }
LOSSEXT_ALWAYS_INLINE VecF operator-(VecF a, VecF b) { return VecF(a.v - b.v); }
LOSSEXT_ALWAYS_INLINE VecF operator*(VecF a, VecF b) { return VecF(a.v * b.v); }
LOSSEXT_ALWAYS_INLINE VecF operator/(VecF a, VecF b) { return VecF(a.v / b.v); }
LOSSEXT_ALWAYS_INLINE VecF operator-(VecF a) { return VecF(-a.v); }
LOSSEXT_ALWAYS_INLINE VecMask operator>(VecF a, VecF b) { return VecMask{a.v > b.v}; }
LOSSEXT_ALWAYS_INLINE VecMask operator<(VecF a, VecF b) { return VecMask{a.v < b.v}; }
LOSSEXT_ALWAYS_INLINE VecMask operator>=(VecF a, VecF b) { return VecMask{a.v >= b.v}; }
LOSSEXT_ALWAYS_INLINE VecMask operator<=(VecF a, VecF b) { return VecMask{a.v <= b.v}; }

LOSSEXT_ALWAYS_INLINE VecF where(VecMask m, VecF a, VecF b) { return VecF(m.bits ? a.v : b.v); }
// NaN-propagating maximum, like torch.maximum: a NaN in either operand wins.
LOSSEXT_ALWAYS_INLINE VecF maximum(VecF a, VecF b) {
  const float_vector_t larger = a.v > b.v ? a.v : b.v;
  return VecF(a.v != a.v ? a.v : larger);
}
// The larger of a and b where NaN handling does not matter (one vmaxps; which
// operand a NaN yields is unspecified). The drivers use it for a row's max,
// whose NaN case is caught by the softmax sum turning NaN.
LOSSEXT_ALWAYS_INLINE VecF unordered_maximum(VecF a, VecF b) {
#if defined(__AVX512F__)
  return VecF(float_vector_t(_mm512_max_ps(__m512(a.v), __m512(b.v))));
#elif defined(__AVX__)
  return VecF(float_vector_t(_mm256_max_ps(__m256(a.v), __m256(b.v))));
#else
  return VecF(a.v > b.v ? a.v : b.v);
#endif
}
LOSSEXT_ALWAYS_INLINE float unordered_maximum(float a, float b) { return a > b ? a : b; }
LOSSEXT_ALWAYS_INLINE double unordered_maximum(double a, double b) { return a > b ? a : b; }

LOSSEXT_ALWAYS_INLINE VecF absolute(VecF a) {
  int_vector_t bits;
  std::memcpy(&bits, &a.v, sizeof(bits));
  bits &= 0x7fffffff;
  float_vector_t r;
  std::memcpy(&r, &bits, sizeof(r));
  return VecF(r);
}

LOSSEXT_ALWAYS_INLINE VecMask operator|(VecMask a, VecMask b) { return VecMask{a.bits | b.bits}; }
LOSSEXT_ALWAYS_INLINE VecMask operator&(VecMask a, VecMask b) { return VecMask{a.bits & b.bits}; }

}  // namespace cpu
}  // namespace lossext
