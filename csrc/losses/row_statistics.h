// The statistics of a block of a row's classes, packed in one row of
// numbers: what the <name>_block_statistics op returns, <name>_combine_statistics
// combines and <name>_block_gradient finishes (csrc/row_statistics_op.h), and
// what a vocabulary-parallel loss exchanges between processes.
//
// A block is a contiguous range of classes [class_offset, class_offset + width)
// of every row. Its statistics are a RowPartial (row_partial.h: the loss's
// statistics of those classes, with the exp sums of every candidate logit
// scale) plus the target's own numbers, taken from the block that holds the
// target. Packed, in the accumulation dtype, MAX-combined fields first:
//
//   MAX part (combine by an elementwise max; NaN wins, as torch.maximum)
//     max_logit              max_j o_j                       kSoftmax or kSmoothingSum
//     negated_min_logit      -min_j o_j over o_j > -inf      kScaledSoftmax
//     max_other_logit        max_{j != t} o_j (-inf: none)   kMaxOther
//   SUM part (each block's relative to its own MAX part; rebase to the
//   combined MAX part, then add), for each logit scale s_k, k < kNumLogitScales:
//     sum_exp_k              sum_j exp(s_k (o_j - r_k))      kSoftmax
//     sum_exp_squared_k      sum_j exp(2 s_k (o_j - r_k))    kSumExpSquared
//     exp_weighted_sum_k     sum_j exp(s_k (o_j - r_k)) (o_j - r_k)   kExpWeightedLogitSum
//   (for a kOtherClassSums loss the first two are sum_exp_other_k and
//   sum_exp_squared_other_k, over j != t: finish() adds the target's terms)
//   (r_k = max_logit for s_k >= 0, the min for s_k < 0), then
//     weighted_logit_sum     sum_j w_j (o_j - max_logit)     kSmoothingSum
//     class_weight_total     sum_j w_j                       kSmoothingSum
//     element_sum            sum_{j != t} element_value(o_j) kElementSum
//     target_logit           o_t in the target's block, 0 elsewhere     class-index losses
//     target_weight          w_t there (1 without weights), 0 elsewhere class-index losses
//
// For a kMaxOtherIndex loss (one whose gradient has a special element at the
// max-other class) the index travels apart, as an int64 tensor (N,) of class
// indices (-1: none in the block), combined with its value (the larger value;
// on equal values the lower index; a NaN, the first NaN, before all:
// RowPartial::beats); other losses get a (0,) tensor. No shipped loss needs
// it (the two-scale loss reads only the value, for its margin); one that did
// would exchange it between processes as an order-preserving int64 key of
// (value, -index) in a MAX reduction (for float: the value's bits made
// monotonic in the high 32 bits, 2^32 - 1 - index in the low 32).
//
// A sharded row therefore needs one MAX reduction of the MAX part, a local
// rebase of each block's SUM part to the result (rebase()), and one SUM
// reduction of the SUM parts; combine() is both steps for two blocks in one
// process. The scaled softmax's exp sums are kept for every candidate scale
// (the two-scale loss's r1/R and r2/R), so the scale a row takes is chosen
// after combining (finish()), without a second round.
#pragma once

#include <cstdint>

#include "row_partial.h"

namespace lossext {

template <class Loss, typename acc_t>
struct BlockStatistics {
  static constexpr unsigned kNeeds = Loss::kNeeds;
  static constexpr int kScales = num_logit_scales<Loss>();
  using Partial = RowPartial<Loss, acc_t, kScales>;
  using Scales = LogitScales<acc_t, kScales>;
  static constexpr bool kIndexTarget = (kNeeds & kDenseTarget) == 0;
  static_assert(!Partial::kScaled || !Partial::kSmoothing,
                "the weighted logit sum of a block is relative to the max; no scaled-softmax loss needs it");

  static constexpr int kMaxFields = int(Partial::kTracksMax) + int(Partial::kScaled) + int(Partial::kOther);
  static constexpr int kFieldsPerScale =
      int(Partial::kSoftmaxSums) + int(Partial::kSquaredSum) + int(Partial::kExpWeighted);
  static constexpr int kSumFields = kScales * kFieldsPerScale + 2 * int(Partial::kSmoothing) +
                                    int(Partial::kElements) + 2 * int(kIndexTarget);
  static constexpr int kFields = kMaxFields + kSumFields;

  Partial partial;
  acc_t target_logit;   // SUM
  acc_t target_weight;  // SUM

  // Calls field(name, value) for every field in packed order; value is a
  // reference into *this (const or not, as *this), negated_min_logit excepted
  // (passed by value: it is -partial.min_logit).
  template <class Self, class Field>
  LOSSEXT_HOST_DEVICE static void for_each_sum_field(Self& self, Field&& field) {
    for (int k = 0; k < kScales; ++k) {
      if constexpr (Partial::kSoftmaxSums) {
        field(Partial::kOtherSums ? "sum_exp_other" : "sum_exp", k, self.partial.sum_exp[k]);
      }
      if constexpr (Partial::kSquaredSum) {
        field(Partial::kOtherSums ? "sum_exp_squared_other" : "sum_exp_squared", k, self.partial.sum_exp_squared[k]);
      }
      if constexpr (Partial::kExpWeighted) field("exp_weighted_sum", k, self.partial.exp_weighted_sum[k]);
    }
    if constexpr (Partial::kSmoothing) {
      field("weighted_logit_sum", -1, self.partial.weighted_logit_sum);
      field("class_weight_total", -1, self.partial.weight_total);
    }
    if constexpr (Partial::kElements) field("element_sum", -1, self.partial.element_sum);
    if constexpr (kIndexTarget) {
      field("target_logit", -1, self.target_logit);
      field("target_weight", -1, self.target_weight);
    }
  }

  // The statistics of a block with nothing in it yet.
  LOSSEXT_HOST_DEVICE static BlockStatistics empty() {
    BlockStatistics b;
    b.partial = Partial::empty();
    b.target_logit = b.target_weight = acc_t(0);
    return b;
  }

  // The packed MAX part alone (to combine it with other blocks' by a max).
  LOSSEXT_HOST_DEVICE void pack_max(acc_t* out) const {
    int i = 0;
    if constexpr (Partial::kTracksMax) out[i++] = partial.max_logit;
    if constexpr (Partial::kScaled) out[i++] = -partial.min_logit;
    if constexpr (Partial::kOther) out[i++] = partial.max_other_logit;
  }
  LOSSEXT_HOST_DEVICE void unpack_max(const acc_t* in) {
    int i = 0;
    if constexpr (Partial::kTracksMax) partial.max_logit = in[i++];
    if constexpr (Partial::kScaled) partial.min_logit = -in[i++];
    if constexpr (Partial::kOther) partial.max_other_logit = in[i++];
  }

  LOSSEXT_HOST_DEVICE void pack(acc_t* out, int64_t* max_other_index) const {
    pack_max(out);
    int i = kMaxFields;
    for_each_sum_field(*this, [&](const char*, int, const acc_t& value) { out[i++] = value; });
    if constexpr (Partial::kOtherIndex) *max_other_index = partial.max_other_index;
  }

  LOSSEXT_HOST_DEVICE static BlockStatistics unpack(const acc_t* in, const int64_t* max_other_index) {
    BlockStatistics b = empty();
    b.unpack_max(in);
    int i = kMaxFields;
    for_each_sum_field(b, [&](const char*, int, acc_t& value) { value = in[i++]; });
    if constexpr (Partial::kOtherIndex) b.partial.max_other_index = *max_other_index;
    return b;
  }

  // The SUM part moved to the references of the combined MAX part `max_part`
  // (packed as pack_max writes it), so that the blocks' SUM parts add up to
  // the combination's. The MAX part becomes max_part's.
  LOSSEXT_HOST_DEVICE void rebase(const acc_t* max_part, const Scales& scales) {
    BlockStatistics combined = *this;
    combined.unpack_max(max_part);
    partial.rebase(combined.partial.max_logit, combined.partial.min_logit, scales);
    if constexpr (Partial::kOther) partial.max_other_logit = combined.partial.max_other_logit;
  }

  LOSSEXT_HOST_DEVICE static BlockStatistics combine(const BlockStatistics& a, const BlockStatistics& b,
                                                     const Scales& scales) {
    BlockStatistics r;
    r.partial = Partial::combine(a.partial, b.partial, scales);
    r.target_logit = a.target_logit + b.target_logit;
    r.target_weight = a.target_weight + b.target_weight;
    return r;
  }

  // The row's RowStats from the statistics of all its classes: the scale the
  // row takes (kScaledSoftmax) and its exp sums. class_weight_total is the
  // combined one (kSmoothingSum), else num_classes, as the drivers' context.
  LOSSEXT_HOST_DEVICE RowStats<acc_t> finish(int64_t num_classes, const acc_t* tensor_params,
                                             const typename Loss::Params& params) const {
    RowStats<acc_t> s;
    s.num_classes = num_classes;
    s.tensor_params = tensor_params;
    s.class_weight_total = Partial::kSmoothing ? partial.weight_total : static_cast<acc_t>(num_classes);
    if constexpr (kIndexTarget) {
      s.target_logit = target_logit;
      s.target_weight = target_weight;
    }
    partial.fill_statistics(s);
    const int scale = choose_logit_scale<Loss>(s, params, partial.min_logit);
    partial.fill_exp_sums(s, scale);
    return s;
  }
};

}  // namespace lossext
