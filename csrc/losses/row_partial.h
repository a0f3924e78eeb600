// Partial statistics of a row, combinable in any order: the seam between the
// drivers' passes and everything that splits a row (the CUDA driver's threads
// and warps, the CPU driver's column blocks, the <name>_block_* ops, and the
// processes of a vocabulary-parallel loss).
//
// A RowPartial holds what a part of a row (some of its classes) contributes
// to the statistics a loss needs (Loss::kNeeds, row_loss.h). Each field has
// one combination rule:
//   MAX-combined (the part's extreme values):
//     max_logit         max_j o_j                        (kSoftmax or kSmoothingSum)
//     min_logit         min_j o_j over o_j != -inf       (kScaledSoftmax; combined as
//                                                         a max of -min_logit)
//     max_other_logit   max_{j != t} o_j                 (kMaxOther; NaN wins)
//       and its index                                    (kMaxOtherIndex; the larger value, on
//                                                         equal values the lower index,
//                                                         the first NaN before all: beats())
//   SUM-combined once rebased to the combined MAX fields (online softmax,
//   Milakov & Gimelshein 2018), one set per logit scale s_k (below):
//     sum_exp[k]                 sum_j e_kj,           e_kj = exp(s_k (o_j - r_k))   (kSoftmax)
//     sum_exp_squared[k]         sum_j e_kj^2                                        (kSumExpSquared)
//       (both over j != t for kOtherClassSums: the target's term is added in fill_exp_sums)
//     exp_weighted_sum[k]        sum_j e_kj (o_j - r_k)                              (kExpWeightedLogitSum)
//   and, relative to max_logit m, for every scale:
//     weighted_logit_sum         sum_j w_j (o_j - m)                                 (kSmoothingSum)
//     weight_total               sum_j w_j                                           (kSmoothingSum)
//   SUM-combined as they are:
//     element_sum                sum_{j != t} element_value(o_j)                     (kElementSum)
// with the reference r_k = m for s_k >= 0 and r_k = min_logit for s_k < 0, so
// that s_k (o_j - r_k) <= 0 and no exponential overflows, whatever the sign of
// a learnable scale (for s < 0 the max of s o is s min o). Rebasing from r to
// r' (r' >= r for s >= 0, r' <= r for s < 0) with f = exp(s (r - r')) <= 1:
//   sum e' = f sum e,   sum e'^2 = f^2 sum e^2,   sum e' (o - r') = f (sum e (o - r) - (r' - r) sum e),
//   sum w (o - m') = sum w (o - m) - (m' - m) sum w.
//
// Logit scales: a kScaledSoftmax loss takes the softmax of s o, with s one of
// Loss::kNumLogitScales candidates (candidate_logit_scale(k, tensor_params);
// the two-scale loss's r1/R and r2/R) chosen per row from statistics that need
// no exponential (logit_scale_index(stats, params): the margin o_t -
// max_{j != t} o_j), so a part cannot know which scale its row will use. One
// pass that knows the row's statistics gathers the exp sums for the chosen
// scale only (the drivers: kScales = 1); a part of a row gathers them for
// every candidate (kScales = kNumLogitScales) and the finishing step selects
// one after combining, so a split row needs no second round of communication.
// Losses without kScaledSoftmax have one scale, s = 1.
//
// -inf logits are classes the softmax excludes (probability 0; for the scaled
// softmax as in the reference, whatever the sign of s): they add nothing to the
// exp sums, and w_j (o_j - m) of the weighted sum is taken as w_j o_j (-inf,
// or NaN for w_j = 0), which no rebasing changes. A part whose classes are all
// -inf has empty exp sums ("nothing at the reference", so rebasing never
// computes -inf - -inf). Rows whose max is +inf or NaN get NaN sums
// (fill_exp_sums), as a direct computation of exp(o_j - max) would.
#pragma once

#include <cstdint>
#include <limits>

#include "row_loss.h"

namespace lossext {

// exp in the accumulation type, for code that runs on the host and the
// device: the hardware approximation for float on a CUDA device (a few ulp,
// against results rounded to the input's dtype), libm elsewhere and for double.
LOSSEXT_HOST_DEVICE float fast_exponential(float x) {
#ifdef __CUDA_ARCH__
  return __expf(x);
#else
  return ::expf(x);
#endif
}
LOSSEXT_HOST_DEVICE double fast_exponential(double x) { return ::exp(x); }

// Loss::kNumLogitScales for kScaledSoftmax losses, else 1 (s = 1).
template <typename Loss>
constexpr int num_logit_scales() {
  if constexpr ((Loss::kNeeds & kScaledSoftmax) != 0) {
    return Loss::kNumLogitScales;
  } else {
    return 1;
  }
}

// The candidate logit scales of a row: s_k = Loss::candidate_logit_scale(k,
// tensor_params) for kScaledSoftmax losses, {1} otherwise.
template <typename acc_t, int kScales>
struct LogitScales {
  acc_t value[kScales];
};

template <class Loss, typename acc_t>
LOSSEXT_HOST_DEVICE LogitScales<acc_t, num_logit_scales<Loss>()> candidate_logit_scales(const acc_t* tensor_params) {
  LogitScales<acc_t, num_logit_scales<Loss>()> scales;
  for (int k = 0; k < num_logit_scales<Loss>(); ++k) {
    if constexpr ((Loss::kNeeds & kScaledSoftmax) != 0) {
      scales.value[k] = Loss::template candidate_logit_scale<acc_t>(k, tensor_params);
    } else {
      scales.value[k] = acc_t(1);
    }
  }
  return scales;
}

// The one scale a single pass gathers with.
template <typename acc_t>
LOSSEXT_HOST_DEVICE LogitScales<acc_t, 1> single_logit_scale(acc_t scale) {
  return LogitScales<acc_t, 1>{{scale}};
}

// The point the exp sums of scale s are taken relative to (see the top).
template <typename acc_t>
LOSSEXT_HOST_DEVICE acc_t scaled_softmax_reference(acc_t scale, acc_t max_logit, acc_t min_logit) {
  return scale >= acc_t(0) ? max_logit : min_logit;
}

// exp(s (o - r)) of one logit, 0 for o = -inf (an excluded class, see the
// top). With s > 0 that is the exponential's own limit, and a row whose
// reference is -inf (every logit -inf) gets exp(NaN), as the CPU driver's
// vector pass, which masks the -inf logits only for s <= 0.
template <typename acc_t>
LOSSEXT_HOST_DEVICE acc_t scaled_exponential(acc_t logit, acc_t scale, acc_t reference) {
  const bool excluded = logit == -infinity<acc_t>() && !(scale > acc_t(0));
  return excluded ? acc_t(0) : fast_exponential(scale * (logit - reference));
}

// e (o - r) at its limit 0 where e = 0 because o - r is infinite (o = +inf
// with a negative scale), so that 0 * inf adds no NaN.
template <typename acc_t>
LOSSEXT_HOST_DEVICE acc_t exp_weighted_term(acc_t e, acc_t shifted) {
  return e == acc_t(0) ? acc_t(0) : e * shifted;
}

// The scale a row uses and the reference its statistics are relative to,
// once max_logit (the row's max), target_logit and max_other_logit are known:
// sets s.logit_scale and moves s.max_logit to that scale's reference (the
// minimum for a negative scale). Returns the candidate's index.
template <class Loss, typename acc_t>
LOSSEXT_HOST_DEVICE int choose_logit_scale(RowStats<acc_t>& s, const typename Loss::Params& params,
                                           acc_t min_logit) {
  if constexpr ((Loss::kNeeds & kScaledSoftmax) != 0) {
    const int k = Loss::logit_scale_index(s, params);
    s.logit_scale = Loss::template candidate_logit_scale<acc_t>(k, s.tensor_params);
    s.max_logit = scaled_softmax_reference(s.logit_scale, s.max_logit, min_logit);
    return k;
  } else {
    return 0;
  }
}

// Which statistics a pass over (part of) a row gathers. One pass gathers all
// (kEverything, online), except with kScaledSoftmax, whose exp sums need the
// row's references first: a pass gathers the rest (kWithoutExpSums), then
// another the exp sums relative to known references (kExpSums).
enum class Gather { kEverything, kWithoutExpSums, kExpSums };

// One part's statistics (kScales sets of exp sums); trivially constructible,
// so an array of them can live in CUDA shared memory.
template <class Loss, typename acc_t, int kScales = 1>
struct RowPartial {
  static constexpr unsigned kNeeds = Loss::kNeeds;
  static constexpr int kNumScales = kScales;
  static constexpr bool kSoftmaxSums = (kNeeds & kSoftmax) != 0;
  static constexpr bool kSquaredSum = (kNeeds & kSumExpSquared) != 0;
  static constexpr bool kSmoothing = (kNeeds & kSmoothingSum) != 0;
  static constexpr bool kExpWeighted = (kNeeds & kExpWeightedLogitSum) != 0;
  static constexpr bool kDense = (kNeeds & kDenseTarget) != 0;
  static constexpr bool kElements = (kNeeds & kElementSum) != 0;
  static constexpr bool kOther = (kNeeds & kMaxOther) != 0;
  static constexpr bool kOtherIndex = kOther && (kNeeds & kMaxOtherIndex) != 0;
  static constexpr bool kScaled = (kNeeds & kScaledSoftmax) != 0;
  // kSmoothingSum is relative to the max too.
  static constexpr bool kTracksMax = kSoftmaxSums || kSmoothing;
  // kOtherClassSums (row_loss.h): sum_exp and sum_exp_squared leave the target
  // out (excluded_index in add()), and fill_exp_sums adds its terms once.
  // exp_weighted_sum's rebase needs the full sum_exp, and a dense row has no
  // target to leave out.
  static constexpr bool kOtherSums = (kNeeds & kOtherClassSums) != 0;
  static_assert(!kOtherSums || (kSoftmaxSums && !kExpWeighted && !kDense),
                "kOtherClassSums: a softmax loss with a target, without kExpWeightedLogitSum");
  static_assert(kScales == 1 || kScaled, "only a kScaledSoftmax loss has more than one logit scale");

  acc_t max_logit;                    // MAX
  acc_t min_logit;                    // MAX of -min_logit (kScaledSoftmax)
  acc_t max_other_logit;              // MAX (by beats() with max_other_index)
  int64_t max_other_index;            // -1 while there is none (kMaxOtherIndex)
  acc_t sum_exp[kScales];             // SUM after rebasing
  acc_t sum_exp_squared[kScales];
  acc_t exp_weighted_sum[kScales];
  acc_t weighted_logit_sum;           // SUM after rebasing
  acc_t weight_total;                 // SUM
  acc_t element_sum;                  // SUM

  // Nothing gathered yet, the exp sums relative to max_logit and min_logit
  // (-inf and +inf for a pass that finds them itself, the row's for Gather::kExpSums).
  LOSSEXT_HOST_DEVICE static RowPartial empty(acc_t max_logit = -infinity<acc_t>(),
                                              acc_t min_logit = infinity<acc_t>()) {
    RowPartial p;
    p.max_logit = max_logit;
    p.min_logit = min_logit;
    p.max_other_logit = -infinity<acc_t>();
    p.max_other_index = -1;
    for (int k = 0; k < kScales; ++k) p.sum_exp[k] = p.sum_exp_squared[k] = p.exp_weighted_sum[k] = acc_t(0);
    p.weighted_logit_sum = p.weight_total = p.element_sum = acc_t(0);
    return p;
  }

  // Whether candidate (value, index) for the max-other logit beats (best,
  // best_index). As amax in the reference, a NaN among the other logits makes
  // the max NaN, at the first NaN's index; otherwise the lowest index of the
  // largest value wins. The order is total, so any combination order gives
  // the same answer.
  LOSSEXT_HOST_DEVICE static bool beats(acc_t value, int64_t index, acc_t best, int64_t best_index) {
    if (best_index < 0) return true;
    const bool value_is_nan = value != value, best_is_nan = best != best;
    if (value_is_nan != best_is_nan) return value_is_nan;
    if (value_is_nan) return index < best_index;
    return value > best || (value == best && index < best_index);
  }

  // The reference of scale s (see the top) and whether this part has nothing
  // there: all its logits are -inf (s >= 0), or none is finite below +inf (s < 0).
  LOSSEXT_HOST_DEVICE acc_t reference(acc_t scale) const {
    if constexpr (kScaled) {
      return scaled_softmax_reference(scale, max_logit, min_logit);
    } else {
      return max_logit;
    }
  }
  LOSSEXT_HOST_DEVICE bool empty_at(acc_t scale) const {
    return scale >= acc_t(0) ? max_logit == -infinity<acc_t>() : min_logit == infinity<acc_t>();
  }

  // Moves the SUM fields to the references of new_max >= max_logit and
  // new_min <= min_logit (formulas at the top), for the scales `scales`.
  LOSSEXT_HOST_DEVICE void rebase(acc_t new_max, acc_t new_min, const LogitScales<acc_t, kScales>& scales) {
    if constexpr (kTracksMax) {
      for (int k = 0; k < kScales; ++k) {
        const acc_t s = scales.value[k];
        const acc_t old_reference = reference(s);
        const acc_t new_reference = scaled_softmax_reference(s, new_max, new_min);
        if (empty_at(s) || new_reference == old_reference) continue;
        const acc_t shift = new_reference - old_reference;
        const acc_t factor = fast_exponential(-s * shift);
        if constexpr (kExpWeighted) exp_weighted_sum[k] = factor * (exp_weighted_sum[k] - shift * sum_exp[k]);
        if constexpr (kSoftmaxSums) sum_exp[k] *= factor;
        if constexpr (kSquaredSum) sum_exp_squared[k] *= factor * factor;
      }
      // A part of -inf logits only has w_j o_j in the weighted sum, relative to nothing.
      if constexpr (kSmoothing) {
        if (max_logit != -infinity<acc_t>() && new_max != max_logit) {
          weighted_logit_sum -= (new_max - max_logit) * weight_total;
        }
      }
    }
    max_logit = new_max;
    min_logit = new_min;
  }

  // Adds the K logits o_j ... o_{j+K-1} with class weights w to what kGather
  // gathers, for the scales `scales` (all of them relative to the references
  // for kExpSums; kEverything is for unscaled losses, s = 1). excluded_index
  // is the target (the index max-other and the element sum skip), -1 for none.
  template <Gather kGather, int K>
  LOSSEXT_HOST_DEVICE void add(int64_t j, const acc_t (&o)[K], const acc_t (&w)[K],
                               const LogitScales<acc_t, kScales>& scales, int64_t excluded_index,
                               const typename Loss::Params& params) {
    static_assert(kGather != Gather::kEverything || !kScaled, "a scaled softmax gathers its exp sums apart");
    if constexpr (kTracksMax && kGather != Gather::kExpSums) {
      acc_t chunk_max = o[0];
      LOSSEXT_UNROLL
      for (int k = 1; k < K; ++k) chunk_max = maximum(chunk_max, o[k]);
      if constexpr (kGather == Gather::kEverything) {
        rebase(maximum(max_logit, chunk_max), min_logit, scales);
      } else {
        max_logit = maximum(max_logit, chunk_max);
      }
      if constexpr (kScaled) {
        LOSSEXT_UNROLL
        for (int k = 0; k < K; ++k) {
          if (o[k] != -infinity<acc_t>() && o[k] < min_logit) min_logit = o[k];
        }
      }
    }
    if constexpr (kTracksMax && kGather != Gather::kWithoutExpSums) {
      LOSSEXT_UNROLL
      for (int k = 0; k < K; ++k) {
        if constexpr (kSoftmaxSums) {
          if (o[k] != -infinity<acc_t>()) {
            for (int c = 0; c < kScales; ++c) {
              // A part with nothing at a scale's reference keeps that scale's sums empty.
              if (kGather == Gather::kExpSums && empty_at(scales.value[c])) continue;
              const acc_t shifted = o[k] - reference(scales.value[c]);
              const acc_t e = fast_exponential(scales.value[c] * shifted);
              if (!kOtherSums || j + k != excluded_index) {
                sum_exp[c] += e;
                if constexpr (kSquaredSum) sum_exp_squared[c] += e * e;
              }
              if constexpr (kExpWeighted) exp_weighted_sum[c] += exp_weighted_term(e, shifted);
            }
          }
        }
        if constexpr (kSmoothing) {
          // w o for o = -inf (the top): the same -inf (or NaN) as w (o - m) for any finite m.
          weighted_logit_sum += w[k] * (o[k] == -infinity<acc_t>() ? o[k] : o[k] - max_logit);
          weight_total += w[k];
        }
      }
    }
    if constexpr (kElements && kGather != Gather::kExpSums) {
      LOSSEXT_UNROLL
      for (int k = 0; k < K; ++k) {
        // RowStats::element_sum leaves the target out (row_loss.h); dense rows
        // have none (their excluded_index 0 is only max-other's, as in the CPU driver).
        if (kDense || j + k != excluded_index) element_sum += Loss::element_value(o[k], params);
      }
    }
    if constexpr (kOther && kGather != Gather::kExpSums) {
      LOSSEXT_UNROLL
      for (int k = 0; k < K; ++k) {
        const int64_t index = j + k;
        if (index == excluded_index) continue;
        if constexpr (kOtherIndex) {
          if (beats(o[k], index, max_other_logit, max_other_index)) {
            max_other_logit = o[k];
            max_other_index = index;
          }
        } else {
          max_other_logit = maximum(max_other_logit, o[k]);
        }
      }
    }
  }

  // The combination of two parts of a row. Symmetric in a and b, so every
  // lane of a butterfly reduction ends with the same max and max-other index
  // (comparisons only), and with the same sums up to the rounding of a
  // contracted multiply-add.
  LOSSEXT_HOST_DEVICE static RowPartial combine(RowPartial a, RowPartial b,
                                                const LogitScales<acc_t, kScales>& scales) {
    RowPartial r = a;
    if constexpr (kTracksMax) {
      const acc_t new_max = maximum(a.max_logit, b.max_logit);
      const acc_t new_min = b.min_logit < a.min_logit ? b.min_logit : a.min_logit;
      a.rebase(new_max, new_min, scales);
      b.rebase(new_max, new_min, scales);
      r.max_logit = new_max;
      r.min_logit = new_min;
      for (int k = 0; k < kScales; ++k) {
        r.sum_exp[k] = a.sum_exp[k] + b.sum_exp[k];
        r.sum_exp_squared[k] = a.sum_exp_squared[k] + b.sum_exp_squared[k];
        r.exp_weighted_sum[k] = a.exp_weighted_sum[k] + b.exp_weighted_sum[k];
      }
      r.weighted_logit_sum = a.weighted_logit_sum + b.weighted_logit_sum;
      r.weight_total = a.weight_total + b.weight_total;
    }
    if constexpr (kElements) r.element_sum = a.element_sum + b.element_sum;
    if constexpr (kOtherIndex) {
      const bool take_a = a.max_other_index >= 0 &&
                          beats(a.max_other_logit, a.max_other_index, b.max_other_logit, b.max_other_index);
      r.max_other_logit = take_a ? a.max_other_logit : b.max_other_logit;
      r.max_other_index = take_a ? a.max_other_index : b.max_other_index;
    } else if constexpr (kOther) {
      r.max_other_logit = maximum(a.max_other_logit, b.max_other_logit);
    }
    return r;
  }

  // The fields a Gather::kExpSums pass gathers, from `exp_pass`, to complete
  // the statistics of a Gather::kWithoutExpSums pass over the same elements.
  LOSSEXT_HOST_DEVICE void take_exp_sums(const RowPartial& exp_pass) {
    for (int k = 0; k < kScales; ++k) {
      sum_exp[k] = exp_pass.sum_exp[k];
      sum_exp_squared[k] = exp_pass.sum_exp_squared[k];
      exp_weighted_sum[k] = exp_pass.exp_weighted_sum[k];
    }
    weighted_logit_sum = exp_pass.weighted_logit_sum;
    weight_total = exp_pass.weight_total;
  }

  // The statistics that need no exponential: the row's max, element sum and
  // max-other logit.
  LOSSEXT_HOST_DEVICE void fill_statistics(RowStats<acc_t>& s) const {
    if constexpr (kTracksMax) s.max_logit = max_logit;
    if constexpr (kElements) s.element_sum = element_sum;
    if constexpr (kOther) s.max_other_logit = max_other_logit;
    if constexpr (kOtherIndex) s.max_other_index = max_other_index;
  }

  // The sums of scale `slot`, relative to s.max_logit (the reference of the
  // row's scale, choose_logit_scale). When that reference is +-inf or NaN,
  // exp(s (o_j - r)) is NaN at the extreme elements and a direct computation's
  // sums are NaN; the same is returned here. With kOtherSums the gathered
  // sums are the other classes' and the target's term, from s.target_logit
  // and s.logit_scale, is added once.
  LOSSEXT_HOST_DEVICE void fill_exp_sums(RowStats<acc_t>& s, int slot = 0) const {
    if constexpr (kTracksMax) {
      const bool finite_reference = s.max_logit - s.max_logit == acc_t(0);  // false for +-inf and NaN
      const acc_t nan = std::numeric_limits<acc_t>::quiet_NaN();
      if constexpr (kSoftmaxSums) s.sum_exp = finite_reference ? sum_exp[slot] : nan;
      if constexpr (kSquaredSum) s.sum_exp_squared = finite_reference ? sum_exp_squared[slot] : nan;
      if constexpr (kOtherSums) {
        const acc_t e_target = scaled_exponential(s.target_logit, s.logit_scale, s.max_logit);
        s.sum_exp_other = s.sum_exp;
        s.sum_exp += e_target;
        if constexpr (kSquaredSum) {
          s.sum_exp_squared_other = s.sum_exp_squared;
          s.sum_exp_squared += e_target * e_target;
        }
      }
      if constexpr (kExpWeighted) s.exp_weighted_logit_sum = finite_reference ? exp_weighted_sum[slot] : nan;
      if constexpr (kSmoothing) {
        // Relative to max_logit; moved to the reference (the minimum for a negative scale).
        const acc_t moved = weighted_logit_sum - (s.max_logit - max_logit) * weight_total;
        s.weighted_logit_sum = finite_reference ? (s.max_logit == max_logit ? weighted_logit_sum : moved) : nan;
        if constexpr (kDense) s.class_weight_total = weight_total;
      }
    }
  }
};

}  // namespace lossext
