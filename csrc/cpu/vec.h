// An 8-wide float vector for the CPU driver, on GCC/Clang vector extensions,
// so the same source compiles to AVX2+FMA when the build enables them
// (setup.py adds -mavx2 -mfma -mf16c on hosts that have them) and to SSE2
// pairs otherwise. It supplies the overloads of where/maximum/absolute/exponential
// that the loss headers call (csrc/losses/row_loss.h), so a loss's
// element_gradient runs on eight classes at a time.
//
// exp is written out here rather than taken from libm (scalar, ~10x slower per
// element) or left to -ffast-math (which would also change NaN/inf semantics
// everywhere). It is the Cephes single-precision scheme: exp(x) = 2^n e^r with
// n = round(x / ln 2), r = x - n ln 2 split into two parts for accuracy, and a
// degree-6 polynomial for e^r on |r| <= ln 2 / 2 (relative error ~1e-7).
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "../losses/row_loss.h"

namespace lossext {
namespace cpu {

// The scalar overloads (row_loss.h) stay visible beside the vector ones below,
// for the drivers' scalar tails and the double path.
using lossext::absolute;
using lossext::exponential;
using lossext::maximum;
using lossext::where;

typedef float float8_t __attribute__((vector_size(32)));
typedef int32_t int8x32_t __attribute__((vector_size(32)));
typedef uint16_t uint16x8_t __attribute__((vector_size(16)));
typedef uint32_t uint32x8_t __attribute__((vector_size(32)));

struct VecMask {
  int8x32_t bits;
};

struct VecF {
  static constexpr int kWidth = 8;
  float8_t v;

  VecF() = default;
  VecF(float scalar) : v(float8_t{} + scalar) {}  // broadcast, as the headers' V(c) expects
  explicit VecF(float8_t raw) : v(raw) {}

  static VecF load(const float* p) {
    float8_t r;
    std::memcpy(&r, p, sizeof(r));
    return VecF(r);
  }
  void store(float* p) const { std::memcpy(p, &v, sizeof(v)); }

  float sum() const {
    // Pairwise, so the order (and hence the rounding) is fixed.
    const float a = (v[0] + v[4]) + (v[2] + v[6]);
    const float b = (v[1] + v[5]) + (v[3] + v[7]);
    return a + b;
  }
  float max() const {
    float m = v[0];
    for (int i = 1; i < kWidth; ++i) m = v[i] > m || v[i] != v[i] ? v[i] : m;
    return m;
  }
};

inline VecF operator+(VecF a, VecF b) { return VecF(a.v + b.v); }
inline VecF operator-(VecF a, VecF b) { return VecF(a.v - b.v); }
inline VecF operator*(VecF a, VecF b) { return VecF(a.v * b.v); }
inline VecF operator/(VecF a, VecF b) { return VecF(a.v / b.v); }
inline VecF operator-(VecF a) { return VecF(-a.v); }
inline VecMask operator>(VecF a, VecF b) { return VecMask{a.v > b.v}; }
inline VecMask operator<(VecF a, VecF b) { return VecMask{a.v < b.v}; }
inline VecMask operator>=(VecF a, VecF b) { return VecMask{a.v >= b.v}; }
inline VecMask operator<=(VecF a, VecF b) { return VecMask{a.v <= b.v}; }

inline VecF where(VecMask m, VecF a, VecF b) { return VecF(m.bits ? a.v : b.v); }
// NaN-propagating maximum, like torch.maximum: a NaN in either operand wins.
inline VecF maximum(VecF a, VecF b) {
  const float8_t larger = a.v > b.v ? a.v : b.v;
  return VecF(a.v != a.v ? a.v : larger);
}
inline VecF absolute(VecF a) {
  int8x32_t bits;
  std::memcpy(&bits, &a.v, sizeof(bits));
  bits &= 0x7fffffff;
  float8_t r;
  std::memcpy(&r, &bits, sizeof(r));
  return VecF(r);
}

inline VecF exponential(VecF x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;
  // Above kHigh (where 2^n would need exponent 128) the answer is inf; exp
  // is within 30% of FLT_MAX there and the drivers only exponentiate
  // o - max <= 0. Below log(FLT_MIN) the result is flushed to zero: a
  // relative change under 1e-38 of any softmax denominator, which holds an
  // exp(0) = 1 term.
  constexpr float kHigh = 88.3762626647949f;
  constexpr float kLow = -87.3365478515625f;
  const float8_t clamped = x.v > kHigh ? float8_t{} + kHigh : (x.v < kLow ? float8_t{} + kLow : x.v);
  // n = round(x log2 e) by the 1.5 * 2^23 trick: adding it leaves n in the low
  // mantissa bits, valid for |n| < 2^22.
  constexpr float kRound = 12582912.0f;
  const float8_t shifted = clamped * kLog2e + kRound;
  const float8_t n = shifted - kRound;
  const float8_t r = (clamped - n * kLn2Hi) - n * kLn2Lo;
  float8_t poly = float8_t{} + 1.9875691500e-4f;
  poly = poly * r + 1.3981999507e-3f;
  poly = poly * r + 8.3334519073e-3f;
  poly = poly * r + 4.1665795894e-2f;
  poly = poly * r + 1.6666665459e-1f;
  poly = poly * r + 5.0000001201e-1f;
  const float8_t r2 = r * r;
  const float8_t er = poly * r2 + r + 1.0f;
  int8x32_t n_bits;
  std::memcpy(&n_bits, &shifted, sizeof(n_bits));
  // 2^n as a float: the low bits of `shifted` hold n + 0x400000; keep n and
  // move it into the exponent field.
  const int8x32_t exponent = ((n_bits - 0x4B400000) + 127) << 23;
  float8_t two_n;
  std::memcpy(&two_n, &exponent, sizeof(two_n));
  float8_t result = er * two_n;
  result = x.v > kHigh ? float8_t{} + std::numeric_limits<float>::infinity() : result;
  result = x.v < kLow ? float8_t{} : result;
  // NaN compares false above, and NaN arithmetic keeps it NaN; the explicit
  // select keeps that true whatever the bit tricks did with the NaN's bits.
  return VecF(x.v != x.v ? x.v : result);
}

// ---- Conversions between storage types and the fp32 compute vector. ----

inline VecF load_as_float(const float* p) { return VecF::load(p); }

inline VecF load_as_float(const c10::BFloat16* p) {
  // bfloat16 is the high half of a float: widening is a 16-bit shift.
  uint16x8_t raw;
  std::memcpy(&raw, p, sizeof(raw));
  const uint32x8_t wide = __builtin_convertvector(raw, uint32x8_t) << 16;
  float8_t r;
  std::memcpy(&r, &wide, sizeof(r));
  return VecF(r);
}

inline VecF load_as_float(const c10::Half* p) {
#if defined(__F16C__)
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256 wide = _mm256_cvtph_ps(raw);
  float8_t r;
  std::memcpy(&r, &wide, sizeof(r));
  return VecF(r);
#else
  float8_t r;
  for (int i = 0; i < VecF::kWidth; ++i) r[i] = static_cast<float>(p[i]);
  return VecF(r);
#endif
}

inline void store_from_float(float* p, VecF x) { x.store(p); }

inline void store_from_float(c10::BFloat16* p, VecF x) {
  // Round to nearest even, as c10::BFloat16's constructor; NaN stays a quiet NaN.
  uint32x8_t bits;
  std::memcpy(&bits, &x.v, sizeof(bits));
  const uint32x8_t rounding = ((bits >> 16) & 1u) + 0x7fffu;
  uint32x8_t rounded = (bits + rounding) >> 16;
  rounded = x.v != x.v ? uint32x8_t{} + 0x7fc0u : rounded;
  const uint16x8_t narrow = __builtin_convertvector(rounded, uint16x8_t);
  std::memcpy(p, &narrow, sizeof(narrow));
}

inline void store_from_float(c10::Half* p, VecF x) {
#if defined(__F16C__)
  __m256 wide;
  std::memcpy(&wide, &x.v, sizeof(wide));
  const __m128i narrow = _mm256_cvtps_ph(wide, _MM_FROUND_TO_NEAREST_INT);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), narrow);
#else
  for (int i = 0; i < VecF::kWidth; ++i) p[i] = c10::Half(x.v[i]);
#endif
}

// ---- Logarithm and powers (for hinge^p, csrc/losses/hinge.h). ----

using lossext::logarithm;
using lossext::nonnegative_power;

// Natural log, the Cephes single-precision scheme: x = m 2^e with m in
// [sqrt(1/2), sqrt(2)), log x = e ln 2 + log(1 + f), f = m - 1, with a degree-8
// polynomial for log(1 + f) - f + f^2 / 2 (relative error ~1e-7). Subnormals
// are scaled by 2^23 into the normal range first. log 0 = -inf, log(x < 0) =
// NaN, log inf = inf, NaN stays NaN, as logf.
inline VecF logarithm(VecF x) {
  constexpr float kMinNormal = 1.17549435e-38f;
  constexpr float kTwoTo23 = 8388608.0f;
  constexpr float kSqrtHalf = 0.707106781186547524f;
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;
  const float8_t subnormal_scaled = x.v < kMinNormal ? x.v * kTwoTo23 : x.v;
  int8x32_t bits;
  std::memcpy(&bits, &subnormal_scaled, sizeof(bits));
  // The biased exponent gives e with the mantissa in [0.5, 1); exponent bits
  // 0x3f000000 put the mantissa there.
  float8_t e = __builtin_convertvector(((bits >> 23) & 0xff) - 126, float8_t);
  e = x.v < kMinNormal ? e - 23.0f : e;
  const int8x32_t mantissa_bits = (bits & 0x007fffff) | 0x3f000000;
  float8_t m;
  std::memcpy(&m, &mantissa_bits, sizeof(m));
  // Move m from [0.5, sqrt(1/2)) to [1, sqrt(2)) so |f| <= sqrt(2) - 1.
  e = m < kSqrtHalf ? e - 1.0f : e;
  const float8_t f = (m < kSqrtHalf ? m + m : m) - 1.0f;
  const float8_t f2 = f * f;
  float8_t poly = float8_t{} + 7.0376836292e-2f;
  poly = poly * f - 1.1514610310e-1f;
  poly = poly * f + 1.1676998740e-1f;
  poly = poly * f - 1.2420140846e-1f;
  poly = poly * f + 1.4249322787e-1f;
  poly = poly * f - 1.6668057665e-1f;
  poly = poly * f + 2.0000714765e-1f;
  poly = poly * f - 2.4999993993e-1f;
  poly = poly * f + 3.3333331174e-1f;
  float8_t result = poly * f * f2 + e * kLn2Lo - 0.5f * f2;
  result = f + result + e * kLn2Hi;
  const float kInf = std::numeric_limits<float>::infinity();
  result = x.v == 0.0f ? float8_t{} - kInf : result;
  result = x.v < 0.0f ? float8_t{} + std::numeric_limits<float>::quiet_NaN() : result;
  result = x.v == kInf ? float8_t{} + kInf : result;
  return VecF(x.v != x.v ? x.v : result);
}

// a^b = exp(b log a) for a >= 0 (NaN for a < 0, see row_loss.h); a^0 = 1 for
// every a, as powf. 0^b is exp(-inf) = 0 for b > 0 and inf for b < 0.
// Exponents below -87 (b log 0 = -inf among them, half of a hinge row) are
// flushed to a zero result here rather than passed to exponential(): its own
// flush below log(FLT_MIN) still forms a subnormal product first, and every
// subnormal costs a microcode assist (measured: 25 ns per element instead of 3).
inline VecF nonnegative_power(VecF a, VecF b) {
  constexpr float kFlushBelow = -87.0f;  // exp(-87) = 1.6e-38, still normal
  const float8_t exponent = (b * logarithm(a)).v;
  const auto flushed = exponent < kFlushBelow;
  float8_t result = exponential(VecF(flushed ? float8_t{} : exponent)).v;
  result = flushed ? float8_t{} : result;
  return VecF(b.v == 0.0f ? float8_t{} + 1.0f : result);
}

}  // namespace cpu
}  // namespace lossext
