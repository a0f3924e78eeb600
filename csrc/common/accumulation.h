// The accumulation type, the one rule for every op and driver: float for
// float32, float16 and bfloat16 inputs (fp32 math and sums for half types),
// double for double inputs. accumulation_t names it in kernels and drivers,
// accumulation_dtype for tensors the op layers allocate (row values, class
// weights, parameters, their gradients).
#pragma once

#include <c10/core/ScalarType.h>

#include <type_traits>

namespace lossext {

template <typename scalar_t>
using accumulation_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

inline c10::ScalarType accumulation_dtype(c10::ScalarType dtype) {
  return dtype == c10::kDouble ? c10::kDouble : c10::kFloat;
}

}  // namespace lossext
