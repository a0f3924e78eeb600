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

// ---- Activation math (csrc/activations/): masks, expm1, tanh, the normal CDF. ----
// Scalar counterparts (libm / CUDA) are in csrc/activations/activation_math.h.

inline VecMask operator|(VecMask a, VecMask b) { return VecMask{a.bits | b.bits}; }

// exp(x) - 1 without the cancellation of exp(x) - 1 near 0: for |x| < 1/2 the
// Taylor series to x^9 (the next term, x^10 / 10!, is below 3e-10 of the
// result), else exp(x) - 1, where exp's ~1e-7 relative error is amplified by
// at most e^x / |e^x - 1| <= 2.6. Limits: -1 at -inf, inf at inf, NaN stays NaN.
inline VecF exponential_minus_one(VecF x) {
  float8_t series = float8_t{} + 1.0f / 362880.0f;
  series = series * x.v + 1.0f / 40320.0f;
  series = series * x.v + 1.0f / 5040.0f;
  series = series * x.v + 1.0f / 720.0f;
  series = series * x.v + 1.0f / 120.0f;
  series = series * x.v + 1.0f / 24.0f;
  series = series * x.v + 1.0f / 6.0f;
  series = series * x.v + 0.5f;
  series = series * (x.v * x.v) + x.v;
  const float8_t direct = exponential(x).v - 1.0f;
  return VecF(absolute(x).v < 0.5f ? series : direct);
}

// tanh, the Cephes single-precision scheme (tanhf.c): for |x| < 0.625 the odd
// minimax polynomial x + x^3 P(x^2) (relative error 4e-9 in exact arithmetic),
// else 1 - 2 / (exp(2|x|) + 1) with x's sign, where the result is at least
// 0.55 so exp's relative error passes through undamped but not amplified.
// exp(2|x|) overflows to inf above 44, giving exactly +-1; NaN stays NaN.
inline VecF hyperbolic_tangent(VecF x) {
  const float8_t magnitude = absolute(x).v;
  const float8_t x2 = x.v * x.v;
  float8_t poly = float8_t{} - 5.70498872745e-3f;
  poly = poly * x2 + 2.06390887954e-2f;
  poly = poly * x2 - 5.37397155531e-2f;
  poly = poly * x2 + 1.33314422036e-1f;
  poly = poly * x2 - 3.33332819422e-1f;
  const float8_t small = x.v + x.v * x2 * poly;
  const float8_t large_magnitude = 1.0f - 2.0f / (exponential(VecF(magnitude + magnitude)).v + 1.0f);
  const float8_t large = x.v < 0.0f ? -large_magnitude : large_magnitude;
  return VecF(magnitude < 0.625f ? small : large);
}

// The standard normal CDF Phi(x) and density phi(x) = exp(-x^2/2) / sqrt(2 pi),
// sharing one exp. With z = |x| / sqrt 2 and t = 1 / (1 + z/2) (Numerical
// Recipes' variable for erfc, section 6.2),
//   erfc(z) = t Q(t) exp(-z^2),   Q(t) = erfcx(z) / t,
// Q a degree-9 polynomial fitted to the relative error over z in [0, 10] by
// tools/fit_normal_tail.py (2.2e-8 in exact arithmetic, 1.5e-7 in float32);
// past z = 9.3, exp(-z^2) is below float32's range and the product is 0. Then
// Phi(-|x|) = erfc(z) / 2 and Phi(|x|) = 1 - Phi(-|x|): no 1 + erf cancels, so
// Phi keeps its relative accuracy in the left tail, where it is small. The
// rounding of x^2 in exp(-x^2/2) adds up to x^2/2 ulp relative error there
// (1e-6 at x = -5.6, where Phi is 1e-8). Phi(+-inf) = 1, 0; NaN stays NaN.
inline void normal_cdf_and_density(VecF x, VecF& cdf, VecF& density) {
  constexpr float kInvSqrtTwo = 0.70710678118654752f;
  constexpr float kInvSqrtTwoPi = 0.39894228040143268f;
  const float8_t z = absolute(x).v * kInvSqrtTwo;
  const float8_t t = 1.0f / (1.0f + 0.5f * z);
  float8_t q = float8_t{} + 1.353464928e-02f;
  q = q * t - 1.296140552e-01f;
  q = q * t + 4.428111315e-01f;
  q = q * t - 6.870458126e-01f;
  q = q * t + 4.341518879e-01f;
  q = q * t - 1.045284793e-01f;
  q = q * t + 2.274455130e-01f;
  q = q * t + 2.382882237e-01f;
  q = q * t + 2.828940153e-01f;
  q = q * t + 2.820628881e-01f;
  const float8_t gaussian = exponential(VecF(-0.5f * x.v * x.v)).v;  // exp(-x^2 / 2) = exp(-z^2)
  const float8_t left_tail = 0.5f * t * q * gaussian;                // Phi(-|x|)
  // NaN fails x >= 0 and keeps the NaN of left_tail.
  cdf = VecF(x.v >= 0.0f ? 1.0f - left_tail : left_tail);
  density = VecF(kInvSqrtTwoPi * gaussian);
}

inline VecF normal_cdf(VecF x) {
  VecF cdf, density;
  normal_cdf_and_density(x, cdf, density);
  return cdf;
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

}  // namespace cpu
}  // namespace lossext
