// Test-only row losses that make the drivers' statistics visible, so the CUDA
// driver's generic paths (every RowNeeds flag, including those no shipped loss
// uses yet) can be compared with the CPU driver's.
//
// value() returns the statistic params[1] selects (reduction none leaves it
// unscaled). The gradient shows every kind of element and its inputs:
//   ordinary   u z_j + w_j
//   target     u z_t - w_t - 1000
//   special    u z_s + 2000 (kMaxOther, when params[2] != 0)
// with u the upstream gradient and z_j = exp(s (o_j - max)). params[0] is
// label smoothing, which the op folds into the dense probe's coefficient rows.
// The scaled probe (kScaledSoftmax) takes two tensor params and uses
// s = tensor_params[o_t > max_{j != t} o_j], a scale chosen from pass-1
// statistics as the two-scale loss's is; its per-row param derivatives are
// (u sum_j z_j (o_j - m), u s S).
#pragma once

#include "losses/row_loss.h"

namespace lossext {
namespace testing {

template <unsigned kExtraNeeds>
struct StatisticsProbe {
  static constexpr unsigned kNeeds =
      kSoftmax | kSumExpSquared | kMaxOther | kMaxOtherIndex | kElementSum | kSmoothingSum | kExpWeightedLogitSum |
      kExtraNeeds;
  static constexpr const char* kName = "statistics_probe";
  static constexpr int kNumParams = 3;
  static constexpr int kNumTensorParams = (kExtraNeeds & kScaledSoftmax) != 0 ? 2 : 0;

  struct Params {
    double label_smoothing;
    double statistic;
    double special_index_used;
  };
  static Params make_params(const double* values) { return Params{values[0], values[1], values[2]}; }

  template <typename T>
  struct Coefficients {
    T upstream;
    bool special_index_used;
  };

  template <typename T>
  LOSSEXT_HOST_DEVICE static T value(const RowStats<T>& s, const Params& params, const ReductionInfo<T>& reduction) {
    switch (static_cast<int>(params.statistic)) {
      case 0: return s.max_logit;
      case 1: return s.sum_exp;
      case 2: return s.sum_exp_squared;
      case 3: return s.max_other_logit;
      case 4: return static_cast<T>(s.max_other_index);
      case 5: return s.element_sum;
      case 6: return s.weighted_logit_sum;
      case 7: return s.class_weight_total;
      case 8: return s.target_logit;
      case 9: return s.target_weight;
      case 10: return static_cast<T>(s.num_classes);
      case 11: return reduction.target_weight_sum;
      case 12: return s.logit_scale;
      default: return s.exp_weighted_logit_sum;
    }
  }

  static constexpr int kNumLogitScales = 2;
  template <typename T>
  LOSSEXT_HOST_DEVICE static T candidate_logit_scale(int k, const T* tensor_params) {
    return tensor_params[k];
  }
  template <typename T>
  LOSSEXT_HOST_DEVICE static int logit_scale_index(const RowStats<T>& s, const Params&) {
    return s.target_logit > s.max_other_logit ? 1 : 0;
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static void param_gradients(const RowStats<T>& s, const Params&, const ReductionInfo<T>&,
                                                  T upstream, T* out) {
    out[0] = upstream * s.exp_weighted_logit_sum;
    out[1] = upstream * s.logit_scale * s.sum_exp;
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static Coefficients<T> coefficients(const RowStats<T>&, const Params& params,
                                                          const ReductionInfo<T>&, T upstream) {
    return Coefficients<T>{upstream, params.special_index_used != 0};
  }

  template <typename V>
  LOSSEXT_HOST_DEVICE static V element_value(V z, const Params&) {
    return z * z;
  }

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V element_gradient(V z, V class_weight, const Coefficients<T>& c) {
    return V(c.upstream) * z + class_weight;
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static T target_gradient(T z, T class_weight, const Coefficients<T>& c) {
    return c.upstream * z - class_weight - T(1000);
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static T special_gradient(T z, T, const Coefficients<T>& c) {
    return c.upstream * z + T(2000);
  }
};

using IndexStatisticsProbe = StatisticsProbe<0>;
using DenseStatisticsProbe = StatisticsProbe<kDenseTarget>;
using ScaledStatisticsProbe = StatisticsProbe<kScaledSoftmax>;

}  // namespace testing
}  // namespace lossext
