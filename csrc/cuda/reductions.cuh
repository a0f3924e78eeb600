// The warp and block reductions of the CUDA drivers: the row-loss driver
// combines its threads' partial row statistics (RowPartial) with them, the
// activation driver the softmax's max and sums and the channel ops' parameter
// gradients.
//
// Both are all-reduces in a fixed order, so every thread ends with the result
// and the result is the same on every run. A warp reduces by an xor butterfly:
// at step k lane i combines its value with lane i ^ (16 >> k)'s, so lane 0
// computes the same tree as the usual shuffle-down reduction, and the other
// lanes the same tree with some combine()s' operands swapped (the same value
// for a commutative combine). A block writes each warp's result to shared
// memory and every thread combines them in warp order, without a second
// broadcast. The host simulation of the row-loss driver
// (tests/cuda_simulation/simulated_driver.cu) replays this order.
#pragma once

#include "common/scalar_math.h"

namespace lossext {
namespace cuda {

constexpr int kWarpSize = 32;
constexpr unsigned kAllLanes = 0xffffffffu;

// The combine()s of the scalar reductions.
struct Sum {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct NanPropagatingMax {  // common/scalar_math.h's maximum
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return maximum(a, b); }
};

// shuffle(value, lane_mask) is `value` of lane (this lane ^ lane_mask): one
// shuffle for a scalar; a struct passes its own, which shuffles its fields.
struct ShuffleXor {
  template <typename T>
  __device__ __forceinline__ T operator()(T value, int lane_mask) const {
    return __shfl_xor_sync(kAllLanes, value, lane_mask);
  }
};

// combine() over the 32 lanes of the warp, in every lane. All lanes must call it.
template <typename T, typename Combine, typename Shuffle = ShuffleXor>
__device__ __forceinline__ T warp_all_reduce(T value, const Combine& combine, const Shuffle& shuffle = Shuffle()) {
#pragma unroll
  for (int lane_mask = kWarpSize / 2; lane_mask > 0; lane_mask /= 2) {
    value = combine(value, shuffle(value, lane_mask));
  }
  return value;
}

// combine() over the block's threads, in every thread, with `warp_results`
// shared memory for one T per warp (blockDim.x is a multiple of kWarpSize).
// Every thread must call it. Its barriers also order everything the block did
// before the call (the row-loss driver's reads of a row) before everything
// after it (the writes of its gradient, which may alias the row), and let the
// next call reuse warp_results.
template <typename T, typename Combine, typename Shuffle = ShuffleXor>
__device__ __forceinline__ T block_all_reduce(T value, const Combine& combine, T* warp_results,
                                              const Shuffle& shuffle = Shuffle()) {
  const T warp_total = warp_all_reduce(value, combine, shuffle);
  if (threadIdx.x % kWarpSize == 0) warp_results[threadIdx.x / kWarpSize] = warp_total;
  __syncthreads();
  T total = warp_results[0];
  for (int warp = 1; warp < static_cast<int>(blockDim.x) / kWarpSize; ++warp) {
    total = combine(total, warp_results[warp]);
  }
  __syncthreads();
  return total;
}

}  // namespace cuda
}  // namespace lossext
