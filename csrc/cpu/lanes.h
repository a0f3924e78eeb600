// The SIMD lane type of the CPU drivers, per accumulation type, and the row
// writer both drivers use: a row loss's gradient, a softmax's output.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cpu/vec/memory.h"
#include "cpu/vec/vector.h"

namespace lossext {
namespace cpu {

// The SIMD lane type for an accumulation type: 16 or 8 floats, or one double
// (the double path exists for gradcheck and float64 users, not for speed).
// load_partial / store_partial / keep_first handle a row's last, partial
// vector: lanes at and past `count` load as `fill`, are not stored, and are
// replaced by `other`.
template <typename acc_t>
struct Lane;

template <>
struct Lane<float> {
  using type = VecF;
  static constexpr int64_t kWidth = VecF::kWidth;
  static VecF load(const float* p) { return VecF::load(p); }
  static void store(float* p, VecF v) { v.store(p); }
  template <typename scalar_t>
  static VecF load_converted(const scalar_t* p) { return load_as_float(p); }
  template <typename scalar_t>
  static void store_converted(scalar_t* p, VecF v) { store_from_float(p, v); }
  template <typename scalar_t>
  static void store_streaming(scalar_t* p, VecF v) { stream_from_float(p, v); }
  template <typename scalar_t>
  static VecF load_partial(const scalar_t* p, int64_t count, float fill) {
    return load_as_float_partial(p, count, fill);
  }
  template <typename scalar_t>
  static void store_partial(scalar_t* p, int64_t count, VecF v) { store_from_float_partial(p, count, v); }
  static VecF keep_first(int64_t count, VecF v, float other) { return where(first_lanes(count), v, VecF(other)); }
  static float reduce_sum(VecF v) { return v.sum(); }
  static float reduce_max(VecF v) { return v.max(); }
  static VecF with_lane_zeroed(VecF v, int64_t lane) { return with_lane_replaced(v, lane, 0.0f); }
  static VecF with_lane_replaced(VecF v, int64_t lane, float value) {
    v.v[lane] = value;
    return v;
  }
};

template <>
struct Lane<double> {
  using type = double;
  static constexpr int64_t kWidth = 1;
  static double load(const double* p) { return *p; }
  static void store(double* p, double v) { *p = v; }
  template <typename scalar_t>
  static double load_converted(const scalar_t* p) { return static_cast<double>(*p); }
  template <typename scalar_t>
  static void store_converted(scalar_t* p, double v) { *p = static_cast<scalar_t>(v); }
  template <typename scalar_t>
  static void store_streaming(scalar_t* p, double v) { *p = static_cast<scalar_t>(v); }
  template <typename scalar_t>
  static double load_partial(const scalar_t* p, int64_t count, double fill) {
    return count > 0 ? static_cast<double>(*p) : fill;
  }
  template <typename scalar_t>
  static void store_partial(scalar_t* p, int64_t count, double v) {
    if (count > 0) *p = static_cast<scalar_t>(v);
  }
  static double keep_first(int64_t count, double v, double other) { return count > 0 ? v : other; }
  static double reduce_sum(double v) { return v; }
  static double reduce_max(double v) { return v; }
  static double with_lane_zeroed(double, int64_t) { return 0.0; }
  static double with_lane_replaced(double, int64_t, double value) { return value; }
};

// Writes one row, out[j] for j in [0, C) (a loss's gradient, a softmax's
// output): vector_at(j, count) gives the elements j .. j + count - 1 in its
// first lanes (count = W but at the row's ends), called once per vector in
// increasing j (so it may read an input that out overwrites). With `stream`,
// a partial vector is written up to the first address aligned to a vector's
// size, then whole vectors are streamed (vec/memory.h).
template <typename L, typename scalar_t, typename VectorAt>
inline void write_row(scalar_t* out, int64_t C, bool stream, VectorAt&& vector_at) {
  constexpr int64_t W = L::kWidth;
  int64_t j = 0;
  if (stream) {
    const int64_t past_alignment = static_cast<int64_t>(reinterpret_cast<uintptr_t>(out) / sizeof(scalar_t) % W);
    if (past_alignment != 0) {
      j = std::min(W - past_alignment, C);
      L::store_partial(out, j, vector_at(int64_t(0), j));
    }
    for (; j + W <= C; j += W) L::store_streaming(out + j, vector_at(j, W));
  } else {
    for (; j + W <= C; j += W) L::store_converted(out + j, vector_at(j, W));
  }
  if (j < C) L::store_partial(out + j, C - j, vector_at(j, C - j));
}

}  // namespace cpu
}  // namespace lossext
