// The per-row finishing step of the row-loss contract (row_loss.h), shared by
// the drivers (cpu/row_loss_driver.h, cuda/row_loss_driver.cuh) and the
// block ops (row_statistics.h): once a row's statistics s are known,
//   the row's value            Loss::value(s, params, reduction)
//   and, for its gradient,     row_gradient(): the tensor params' derivatives
//                              (param_gradients), the per-row coefficients, the
//                              element special_gradient() is for and z's exp_shift,
//   one element's gradient     gradient_at(): special_gradient at that element,
//                              target_gradient at the target, element_gradient elsewhere.
// A driver that writes a row's gradient vector by vector runs element_gradient
// over the row and then gradient_at() at the target and the special element.
#pragma once

#include <cstdint>

#include "row_loss.h"

namespace lossext {

template <class Loss, typename T>
struct RowGradient {
  typename Loss::template Coefficients<T> coefficients;
  int64_t special_index;  // the class special_gradient() is for (kMaxOtherIndex), -1 for none
  // The coefficients' exp_shift, 0 for losses without one: a softmax loss's
  // z_j is then exp(s (o_j - m) + exp_shift) (row_loss.h).
  T exp_shift;
};

// The gradient's per-row part, with the gradient of the output `upstream`
// folded in. Writes the row's kNumTensorParams derivatives to
// row_param_grads unless it is nullptr.
template <class Loss, typename T>
LOSSEXT_HOST_DEVICE RowGradient<Loss, T> row_gradient(const RowStats<T>& s, const typename Loss::Params& params,
                                                      const ReductionInfo<T>& reduction, T upstream,
                                                      T* row_param_grads) {
  if constexpr (TensorParamCount<Loss>::value > 0) {
    if (row_param_grads != nullptr) Loss::param_gradients(s, params, reduction, upstream, row_param_grads);
  }
  RowGradient<Loss, T> g{Loss::coefficients(s, params, reduction, upstream), -1, T(0)};
  if constexpr (HasExpShift<typename Loss::template Coefficients<T>>::value) g.exp_shift = g.coefficients.exp_shift;
  if constexpr ((Loss::kNeeds & kMaxOtherIndex) != 0) {
    if (g.coefficients.special_index_used) g.special_index = s.max_other_index;
  }
  return g;
}

// dl/do_j for element j (z_j and w_j as in row_loss.h) of a row whose target
// is `target` (ignored for dense losses, which have none).
template <class Loss, typename T>
LOSSEXT_HOST_DEVICE T gradient_at(int64_t j, T z, T w, int64_t target, const RowGradient<Loss, T>& g) {
  if constexpr ((Loss::kNeeds & kMaxOtherIndex) != 0) {
    if (j == g.special_index) return Loss::special_gradient(z, w, g.coefficients);
  }
  if constexpr ((Loss::kNeeds & kDenseTarget) == 0) {
    if (j == target) return Loss::target_gradient(z, w, g.coefficients);
  }
  return Loss::template element_gradient<T, T>(z, w, g.coefficients);
}

}  // namespace lossext
