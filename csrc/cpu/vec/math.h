// Vector math on VecF (vector.h): exp, expm1, tanh, the normal CDF, log and
// powers, the overloads of the names in csrc/common/scalar_math.h and
// csrc/activations/activation_math.h that the loss and activation headers call.
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

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "common/macros.h"
#include "common/scalar_math.h"
#include "cpu/vec/vector.h"

namespace lossext {
namespace cpu {

// The scalar overloads (common/scalar_math.h) stay visible beside the vector
// ones below, for the drivers' scalar tails and the double path.
using lossext::exponential;
using lossext::logarithm;
using lossext::nonnegative_power;

// c[0] x^(N-1) + c[1] x^(N-2) + ... + c[N-1], by Horner's rule: one fused
// multiply-add a step (the build's -ffp-contract=fast), coefficients highest
// degree first.
template <size_t N>
LOSSEXT_ALWAYS_INLINE float_vector_t horner(float_vector_t x, const float (&c)[N]) {
  float_vector_t p = float_vector_t{} + c[0];
  for (size_t k = 1; k < N; ++k) p = p * x + c[k];
  return p;
}

// The reduced argument of e^x = 2^n e^r: n = round(x log2 e) and the
// polynomial value e^r, for |x| < 2^21 (NaN stays NaN).
LOSSEXT_ALWAYS_INLINE float_vector_t exponential_of_reduced(float_vector_t x, float_vector_t& n) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;
  // n = round(x log2 e) by the 1.5 * 2^23 trick: adding it leaves n in the low
  // mantissa bits, valid for |n| < 2^22.
  constexpr float kRound = 12582912.0f;
  n = (x * kLog2e + kRound) - kRound;
  const float_vector_t r = (x - n * kLn2Hi) - n * kLn2Lo;
  const float_vector_t poly = horner(r, {
      1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f,
      5.0000001201e-1f});
  return poly * (r * r) + r + 1.0f;
}

// 2^n e^r, and 0 in the lanes where x < low (a NaN x is kept). With AVX-512,
// one vscalefps, which also overflows to inf; otherwise 2^n is built in the
// exponent field (n in [-126, 127] there) and multiplied. The result must be
// normal (or 0 or inf): a subnormal product costs a microcode assist,
// measured here at ~5 ns per element instead of ~0.3.
LOSSEXT_ALWAYS_INLINE float_vector_t scale_by_power_of_two(float_vector_t er, float_vector_t n, float_vector_t x,
                                                           float low) {
#if defined(__AVX512F__)
  const __mmask16 keep = _mm512_cmp_ps_mask(__m512(x), _mm512_set1_ps(low), _CMP_NLT_UQ);
  return float_vector_t(_mm512_maskz_scalef_ps(keep, __m512(er), __m512(n)));
#else
  const int_vector_t n_bits = __builtin_convertvector(n, int_vector_t);
  const int_vector_t exponent = (n_bits + 127) << 23;
  float_vector_t two_n;
  std::memcpy(&two_n, &exponent, sizeof(two_n));
  int_vector_t result_bits;
  const float_vector_t result = er * two_n;
  std::memcpy(&result_bits, &result, sizeof(result_bits));
  result_bits &= ~(x < low);
  float_vector_t kept;
  std::memcpy(&kept, &result_bits, sizeof(kept));
  return kept;
#endif
}

// The lanes of x clamped to [low, high], a NaN kept: vminps/vmaxps return
// their second operand when either is NaN.
LOSSEXT_ALWAYS_INLINE float_vector_t clamp_keeping_nan(float_vector_t x, float low, float high) {
#if defined(__AVX512F__)
  return float_vector_t(_mm512_max_ps(_mm512_set1_ps(low), _mm512_min_ps(_mm512_set1_ps(high), __m512(x))));
#elif defined(__AVX__)
  return float_vector_t(_mm256_max_ps(_mm256_set1_ps(low), _mm256_min_ps(_mm256_set1_ps(high), __m256(x))));
#else
  float_vector_t clamped = high < x ? float_vector_t{} + high : x;
  return clamped < low ? float_vector_t{} + low : clamped;
#endif
}

LOSSEXT_ALWAYS_INLINE VecF exponential(VecF x) {
  // Below log(FLT_MIN) the result is flushed to zero rather than formed as a
  // subnormal (see scale_by_power_of_two): a relative change under 1e-38 of
  // any softmax denominator, which holds an exp(0) = 1 term. x is clamped to
  // at most 89, past log(FLT_MAX) = 88.72: e^89 overflows to inf in the
  // scaling on AVX-512; without it the exponent field holds at most 2^127, so
  // the clamp is 88.37 there and larger x are set to inf after.
  constexpr float kLow = -87.3365478515625f;  // log(FLT_MIN)
#if defined(__AVX512F__)
  constexpr float kHigh = 89.0f;
#else
  constexpr float kHigh = 88.3762626647949f;
#endif
  float_vector_t n;
  const float_vector_t er = exponential_of_reduced(clamp_keeping_nan(x.v, kLow, kHigh), n);
  const float_vector_t result = scale_by_power_of_two(er, n, x.v, kLow);
#if defined(__AVX512F__)
  return VecF(result);
#else
  return VecF(x.v > kHigh ? float_vector_t{} + std::numeric_limits<float>::infinity() : result);
#endif
}

// ---- exp of a softmax's shifted logits, x = o - max <= 0 (or NaN). ----

// exponential()'s arithmetic, bit for bit on [-87, 0], without the work its
// general domain needs: x <= 0 cannot overflow, and a NaN x stays NaN through
// the arithmetic, so one mask remains: x below -87 gives 0. Clamping there
// first means no subnormal ever forms; e^-87 = 1.6e-38, so the flushed band
// changes a softmax sum, which holds e^0 = 1, by at most 4e-38. -inf gives 0.
// Pass 2 of the softmax losses runs it once per logit.
LOSSEXT_ALWAYS_INLINE VecF exponential_nonpositive(VecF x) {
  constexpr float kFlushBelow = -87.0f;
  float_vector_t n;
  const float_vector_t er = exponential_of_reduced(x.v < kFlushBelow ? float_vector_t{} + kFlushBelow : x.v, n);
  return VecF(scale_by_power_of_two(er, n, x.v, kFlushBelow));
}
// The scalar tails and the double path take the general exp.
LOSSEXT_ALWAYS_INLINE float exponential_nonpositive(float x) { return exponential(x); }
LOSSEXT_ALWAYS_INLINE double exponential_nonpositive(double x) { return exponential(x); }

// ---- Activation math (csrc/activations/): expm1, tanh, the normal CDF. ----
// Scalar counterparts (libm / CUDA) are in csrc/activations/activation_math.h.

// exp(x) - 1 without the cancellation of exp(x) - 1 near 0: for |x| < 1/2 the
// Taylor series to x^9 (the next term, x^10 / 10!, is below 3e-10 of the
// result), else exp(x) - 1, where exp's ~1e-7 relative error is amplified by
// at most e^x / |e^x - 1| <= 2.6. Limits: -1 at -inf, inf at inf, NaN stays NaN.
LOSSEXT_ALWAYS_INLINE VecF exponential_minus_one(VecF x) {
  const float_vector_t series = horner(x.v, {
      1.0f / 362880.0f, 1.0f / 40320.0f, 1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f,
      1.0f / 6.0f, 0.5f}) * (x.v * x.v) + x.v;
  const float_vector_t direct = exponential(x).v - 1.0f;
  return VecF(absolute(x).v < 0.5f ? series : direct);
}

// tanh, the Cephes single-precision scheme (tanhf.c): for |x| < 0.625 the odd
// minimax polynomial x + x^3 P(x^2) (relative error 4e-9 in exact arithmetic),
// else 1 - 2 / (exp(2|x|) + 1) with x's sign, where the result is at least
// 0.55 so exp's relative error passes through undamped but not amplified.
// exp(2|x|) overflows to inf above 44, giving exactly +-1; NaN stays NaN.
LOSSEXT_ALWAYS_INLINE VecF hyperbolic_tangent(VecF x) {
  const float_vector_t magnitude = absolute(x).v;
  const float_vector_t x2 = x.v * x.v;
  const float_vector_t poly = horner(x2, {
      -5.70498872745e-3f, 2.06390887954e-2f, -5.37397155531e-2f, 1.33314422036e-1f, -3.33332819422e-1f});
  const float_vector_t small = x.v + x.v * x2 * poly;
  const float_vector_t large_magnitude = 1.0f - 2.0f / (exponential(VecF(magnitude + magnitude)).v + 1.0f);
  const float_vector_t large = x.v < 0.0f ? -large_magnitude : large_magnitude;
  return VecF(magnitude < 0.625f ? small : large);
}

// The standard normal CDF Phi(x) and density phi(x) = exp(-x^2/2) / sqrt(2 pi),
// sharing one exp. With z = |x| / sqrt 2 and t = 1 / (1 + z/2) (Numerical
// Recipes' variable for erfc, section 6.2),
//   erfc(z) = t Q(t) exp(-z^2),   Q(t) = erfcx(z) / t,
// Q a degree-9 polynomial fitted to the relative error over z in [0, 10] by
// tools/fit_normal_tail.py (2.2e-8 in exact arithmetic, 1.5e-7 in float32);
// past |x| = 13.19, exp(-x^2/2) is flushed (exponential_nonpositive) and the
// product is 0, where Phi(-|x|) < 1e-39 is below float32's normal range. Then
// Phi(-|x|) = erfc(z) / 2 and Phi(|x|) = 1 - Phi(-|x|): no 1 + erf cancels, so
// Phi keeps its relative accuracy in the left tail, where it is small. The
// rounding of x^2 in exp(-x^2/2) adds up to x^2/2 ulp relative error there
// (1e-6 at x = -5.6, where Phi is 1e-8). Phi(+-inf) = 1, 0; NaN stays NaN.
LOSSEXT_ALWAYS_INLINE void normal_cdf_and_density(VecF x, VecF& cdf, VecF& density) {
  constexpr float kHalfInvSqrtTwo = 0.35355339059327376f;  // z/2 = |x| / (2 sqrt 2)
  constexpr float kInvSqrtTwoPi = 0.39894228040143268f;
  const float_vector_t t = 1.0f / (1.0f + absolute(x).v * kHalfInvSqrtTwo);
  // Q / 2 (the fit's coefficients halved, exactly): Phi(-|x|) = t (Q / 2) exp(-z^2).
  const float_vector_t half_q = horner(t, {
      6.767324638e-03f, -6.480702758e-02f, 2.214055657e-01f, -3.435229063e-01f, 2.170759439e-01f,
      -5.226423964e-02f, 1.137227565e-01f, 1.191441119e-01f, 1.414470077e-01f, 1.410314441e-01f});
  // exp(-x^2 / 2) = exp(-z^2); its argument is <= 0 (or NaN).
  const float_vector_t gaussian = exponential_nonpositive(VecF(-0.5f * x.v * x.v)).v;
  const float_vector_t left_tail = t * half_q * gaussian;  // Phi(-|x|)
  // NaN fails x >= 0 and keeps the NaN of left_tail.
  cdf = VecF(x.v >= 0.0f ? 1.0f - left_tail : left_tail);
  density = VecF(kInvSqrtTwoPi * gaussian);
}

LOSSEXT_ALWAYS_INLINE VecF normal_cdf(VecF x) {
  VecF cdf, density;
  normal_cdf_and_density(x, cdf, density);
  return cdf;
}

// ---- Logarithm and powers (for hinge^p, csrc/losses/hinge.h). ----

// Natural log, the Cephes single-precision scheme: x = m 2^e with m in
// [sqrt(1/2), sqrt(2)), log x = e ln 2 + log(1 + f), f = m - 1, with a degree-8
// polynomial for log(1 + f) - f + f^2 / 2 (relative error ~1e-7). Subnormals
// are scaled by 2^23 into the normal range first. log 0 = -inf, log(x < 0) =
// NaN, log inf = inf, NaN stays NaN, as logf.
LOSSEXT_ALWAYS_INLINE VecF logarithm(VecF x) {
  constexpr float kMinNormal = 1.17549435e-38f;
  constexpr float kTwoTo23 = 8388608.0f;
  constexpr float kSqrtHalf = 0.707106781186547524f;
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;
  const float_vector_t subnormal_scaled = x.v < kMinNormal ? x.v * kTwoTo23 : x.v;
  int_vector_t bits;
  std::memcpy(&bits, &subnormal_scaled, sizeof(bits));
  // The biased exponent gives e with the mantissa in [0.5, 1); exponent bits
  // 0x3f000000 put the mantissa there.
  float_vector_t e = __builtin_convertvector(((bits >> 23) & 0xff) - 126, float_vector_t);
  e = x.v < kMinNormal ? e - 23.0f : e;
  const int_vector_t mantissa_bits = (bits & 0x007fffff) | 0x3f000000;
  float_vector_t m;
  std::memcpy(&m, &mantissa_bits, sizeof(m));
  // Move m from [0.5, sqrt(1/2)) to [1, sqrt(2)) so |f| <= sqrt(2) - 1.
  e = m < kSqrtHalf ? e - 1.0f : e;
  const float_vector_t f = (m < kSqrtHalf ? m + m : m) - 1.0f;
  const float_vector_t f2 = f * f;
  const float_vector_t poly = horner(f, {
      7.0376836292e-2f, -1.1514610310e-1f, 1.1676998740e-1f, -1.2420140846e-1f, 1.4249322787e-1f,
      -1.6668057665e-1f, 2.0000714765e-1f, -2.4999993993e-1f, 3.3333331174e-1f});
  float_vector_t result = poly * f * f2 + e * kLn2Lo - 0.5f * f2;
  result = f + result + e * kLn2Hi;
  const float kInf = std::numeric_limits<float>::infinity();
  result = x.v == 0.0f ? float_vector_t{} - kInf : result;
  result = x.v < 0.0f ? float_vector_t{} + std::numeric_limits<float>::quiet_NaN() : result;
  result = x.v == kInf ? float_vector_t{} + kInf : result;
  return VecF(x.v != x.v ? x.v : result);
}

// a^b = exp(b log a) for a >= 0 (NaN for a < 0, see common/scalar_math.h);
// a^0 = 1 for every a, as powf. 0^b is exp(-inf) = 0 for b > 0 and inf for b < 0.
// Exponents below -87 (b log 0 = -inf among them, half of a hinge row) are
// flushed to a zero result here rather than passed to exponential(): its own
// flush below log(FLT_MIN) still forms a subnormal product first, and every
// subnormal costs a microcode assist (measured: 25 ns per element instead of 3).
LOSSEXT_ALWAYS_INLINE VecF nonnegative_power(VecF a, VecF b) {
  constexpr float kFlushBelow = -87.0f;  // exp(-87) = 1.6e-38, still normal
  const float_vector_t exponent = (b * logarithm(a)).v;
  const auto flushed = exponent < kFlushBelow;
  float_vector_t result = exponential(VecF(flushed ? float_vector_t{} : exponent)).v;
  result = flushed ? float_vector_t{} : result;
  return VecF(b.v == 0.0f ? float_vector_t{} + 1.0f : result);
}

}  // namespace cpu
}  // namespace lossext
