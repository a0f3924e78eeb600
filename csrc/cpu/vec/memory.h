// Loads and stores of VecF (vector.h): conversions between the storage types
// (float, bfloat16, float16) and the fp32 compute vector, partial vectors for
// a row's ends, and streaming stores (whether to use them: cpu/streaming.h).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "common/macros.h"
#include "cpu/vec/vector.h"

namespace lossext {
namespace cpu {

// ---- Conversions between storage types and the fp32 compute vector. ----

LOSSEXT_ALWAYS_INLINE VecF load_as_float(const float* p) { return VecF::load(p); }

LOSSEXT_ALWAYS_INLINE VecF load_as_float(const c10::BFloat16* p) {
  // bfloat16 is the high half of a float: widening is a 16-bit shift.
  uint16_vector_t raw;
  std::memcpy(&raw, p, sizeof(raw));
  const uint_vector_t wide = __builtin_convertvector(raw, uint_vector_t) << 16;
  float_vector_t r;
  std::memcpy(&r, &wide, sizeof(r));
  return VecF(r);
}

LOSSEXT_ALWAYS_INLINE VecF load_as_float(const c10::Half* p) {
#if defined(__AVX512F__)
  const __m512 wide = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  float_vector_t r;
  std::memcpy(&r, &wide, sizeof(r));
  return VecF(r);
#elif defined(__F16C__)
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256 wide = _mm256_cvtph_ps(raw);
  float_vector_t r;
  std::memcpy(&r, &wide, sizeof(r));
  return VecF(r);
#else
  float_vector_t r;
  for (int i = 0; i < VecF::kWidth; ++i) r[i] = static_cast<float>(p[i]);
  return VecF(r);
#endif
}

LOSSEXT_ALWAYS_INLINE void store_from_float(float* p, VecF x) { x.store(p); }

// x rounded to bfloat16 (to nearest even, as c10::BFloat16's constructor) in
// the high 16 bits of each 32-bit lane; the low 16 bits are left over from
// the rounding. NaN becomes the quiet NaN 0x7fc0.
LOSSEXT_ALWAYS_INLINE uint_vector_t bfloat16_in_high_half(VecF x) {
  uint_vector_t bits;
  std::memcpy(&bits, &x.v, sizeof(bits));
  const uint_vector_t rounded = bits + (((bits >> 16) & 1u) + 0x7fffu);
  return x.v != x.v ? uint_vector_t{} + 0x7fc00000u : rounded;
}

// The 16-bit patterns of x rounded to bfloat16.
LOSSEXT_ALWAYS_INLINE uint16_vector_t bfloat16_bits(VecF x) {
  return __builtin_convertvector(bfloat16_in_high_half(x) >> 16, uint16_vector_t);
}

// 2 * kWidth bfloat16 values as two float vectors, the even-indexed elements
// in one and the odd-indexed in the other (BFloat16Pairs): each 32-bit word holds an even
// element in its low half and the next, odd one in its high half, so a shift
// and a mask widen them, with none of the lane shuffles that widening in
// order takes (which compete with the arithmetic for the vector ports). For
// elementwise maps, whose lanes do not interact: measured in L1, sigmoid's
// forward on bfloat16 0.54 ns per element in order, 0.46 in pairs.
struct BFloat16Pairs {
  VecF even, odd;
  explicit BFloat16Pairs(const c10::BFloat16* p) {
    uint_vector_t words;
    std::memcpy(&words, p, sizeof(words));
    const uint_vector_t even_bits = words << 16;
    const uint_vector_t odd_bits = words & 0xffff0000u;
    std::memcpy(&even.v, &even_bits, sizeof(even.v));
    std::memcpy(&odd.v, &odd_bits, sizeof(odd.v));
  }
};

// The inverse of BFloat16Pairs, rounding as bfloat16_bits: the words of
// 2 * kWidth bfloat16 values, stored by store_bfloat16_pairs (or streamed by
// stream_raw below).
LOSSEXT_ALWAYS_INLINE uint_vector_t bfloat16_pair_words(VecF even, VecF odd) {
  return (bfloat16_in_high_half(odd) & 0xffff0000u) | (bfloat16_in_high_half(even) >> 16);
}

LOSSEXT_ALWAYS_INLINE void store_bfloat16_pairs(c10::BFloat16* p, VecF even, VecF odd) {
  const uint_vector_t words = bfloat16_pair_words(even, odd);
  std::memcpy(p, &words, sizeof(words));
}

// The 16-bit patterns of x rounded to float16 (to nearest even, as c10::Half).
LOSSEXT_ALWAYS_INLINE uint16_vector_t half_bits(VecF x) {
  uint16_vector_t narrow;
#if defined(__AVX512F__)
  __m512 wide;
  std::memcpy(&wide, &x.v, sizeof(wide));
  const __m256i converted = _mm512_cvtps_ph(wide, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  std::memcpy(&narrow, &converted, sizeof(narrow));
#elif defined(__F16C__)
  __m256 wide;
  std::memcpy(&wide, &x.v, sizeof(wide));
  const __m128i converted = _mm256_cvtps_ph(wide, _MM_FROUND_TO_NEAREST_INT);
  std::memcpy(&narrow, &converted, sizeof(narrow));
#else
  for (int i = 0; i < VecF::kWidth; ++i) narrow[i] = c10::Half(x.v[i]).x;
#endif
  return narrow;
}

LOSSEXT_ALWAYS_INLINE void store_from_float(c10::BFloat16* p, VecF x) {
  const uint16_vector_t narrow = bfloat16_bits(x);
  std::memcpy(p, &narrow, sizeof(narrow));
}

LOSSEXT_ALWAYS_INLINE void store_from_float(c10::Half* p, VecF x) {
  const uint16_vector_t narrow = half_bits(x);
  std::memcpy(p, &narrow, sizeof(narrow));
}

// ---- Partial vectors: the first `count` lanes, 0 <= count <= kWidth. ----
// For a row's last, partial vector, so the tail runs the same vector code as
// the rest (and a row shorter than a vector takes one vector step, not C
// scalar ones). Masked loads and stores (AVX-512 BW) touch no memory past
// p + count; elsewhere a stack buffer stands in.

LOSSEXT_ALWAYS_INLINE VecMask first_lanes(int64_t count) {
  int_vector_t lane;
  for (int i = 0; i < VecF::kWidth; ++i) lane[i] = i;
  return VecMask{lane < static_cast<int32_t>(count)};
}

template <typename scalar_t>
LOSSEXT_ALWAYS_INLINE VecF load_as_float_partial(const scalar_t* p, int64_t count, float fill) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  const __mmask16 mask = static_cast<__mmask16>((1u << count) - 1u);
  if constexpr (std::is_same_v<scalar_t, float>) {
    const __m512 loaded = _mm512_mask_loadu_ps(_mm512_set1_ps(fill), mask, p);
    float_vector_t r;
    std::memcpy(&r, &loaded, sizeof(r));
    return VecF(r);
  } else {
    const __m256i raw = _mm256_maskz_loadu_epi16(mask, p);
    scalar_t narrow[VecF::kWidth];
    std::memcpy(narrow, &raw, sizeof(narrow));
    return where(first_lanes(count), load_as_float(narrow), VecF(fill));
  }
#else
  scalar_t buffer[VecF::kWidth];
  for (int i = 0; i < VecF::kWidth; ++i) buffer[i] = i < count ? p[i] : static_cast<scalar_t>(fill);
  return load_as_float(buffer);
#endif
}

template <typename scalar_t>
LOSSEXT_ALWAYS_INLINE void store_from_float_partial(scalar_t* p, int64_t count, VecF x) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  const __mmask16 mask = static_cast<__mmask16>((1u << count) - 1u);
  if constexpr (std::is_same_v<scalar_t, float>) {
    __m512 wide;
    std::memcpy(&wide, &x.v, sizeof(wide));
    _mm512_mask_storeu_ps(p, mask, wide);
  } else {
    const uint16_vector_t narrow = std::is_same_v<scalar_t, c10::BFloat16> ? bfloat16_bits(x) : half_bits(x);
    __m256i bits;
    std::memcpy(&bits, &narrow, sizeof(bits));
    _mm256_mask_storeu_epi16(p, mask, bits);
  }
#else
  scalar_t buffer[VecF::kWidth];
  store_from_float(buffer, x);
  for (int64_t i = 0; i < count; ++i) p[i] = buffer[i];
#endif
}

// ---- Streaming (non-temporal) stores, for outputs too large to stay cached. ----
// They skip the read-for-ownership of each destination line, so writing a
// gradient the size of the logits moves two bytes of DRAM traffic per byte
// written plus read, not three. p must be aligned to the stored vector's size
// (sizeof(scalar_t) * VecF::kWidth); streaming_fence() must follow before
// another thread reads the data.

// raw's bytes as the intrinsic's vector type, given to `store` at p.
template <typename Bits, typename Raw, typename Store>
LOSSEXT_ALWAYS_INLINE void store_bits(void* p, const Raw& raw, Store store) {
  Bits bits;
  std::memcpy(&bits, &raw, sizeof(bits));
  store(reinterpret_cast<Bits*>(p), bits);
}

template <typename Raw>
LOSSEXT_ALWAYS_INLINE void stream_raw(void* p, const Raw& raw) {
  static_assert(sizeof(Raw) == 16 || sizeof(Raw) == 32 || sizeof(Raw) == 64, "a 16-, 32- or 64-byte vector");
#if defined(__AVX512F__)
  if constexpr (sizeof(Raw) == 64) {
    return store_bits<__m512i>(p, raw, [](__m512i* q, __m512i b) { _mm512_stream_si512(q, b); });
  }
#endif
#if defined(__AVX__)
  if constexpr (sizeof(Raw) == 32) {
    return store_bits<__m256i>(p, raw, [](__m256i* q, __m256i b) { _mm256_stream_si256(q, b); });
  }
#endif
#if defined(__SSE2__)
  if constexpr (sizeof(Raw) == 16) {
    return store_bits<__m128i>(p, raw, [](__m128i* q, __m128i b) { _mm_stream_si128(q, b); });
  }
#endif
  std::memcpy(p, &raw, sizeof(raw));  // no streaming store for this width: an ordinary one
}

LOSSEXT_ALWAYS_INLINE void stream_from_float(float* p, VecF x) { stream_raw(p, x.v); }
LOSSEXT_ALWAYS_INLINE void stream_from_float(c10::BFloat16* p, VecF x) { stream_raw(p, bfloat16_bits(x)); }
LOSSEXT_ALWAYS_INLINE void stream_from_float(c10::Half* p, VecF x) { stream_raw(p, half_bits(x)); }

LOSSEXT_ALWAYS_INLINE void streaming_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

}  // namespace cpu
}  // namespace lossext
