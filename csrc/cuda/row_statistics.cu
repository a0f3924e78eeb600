// CUDA kernels of every row loss's block ops (row_statistics_op.h), on the
// row-loss driver's per-row phases (row_loss_driver.cuh): a block of a row's
// classes is gathered and finished as a row of `width` classes whose first
// is class_offset. Block statistics: a warp or block per row gathers the
// block's RowPartial with the exp sums of every candidate logit scale (a
// scaled softmax in two passes, the second from the block's own max and
// min), thread 0 packs it (losses/row_statistics.h). Loss and gradient: the
// combined statistics finished per row, then the block's gradient pass.
// Combination and rebasing: one thread per row. Nothing synchronises with
// the host. Compiled in CI; not yet run on a GPU.
#include <torch/library.h>

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>

#include <vector>

#include "losses/all_losses.h"
#include "losses/row_statistics.h"
#include "ops/row_statistics_op.h"
#include "cuda/row_loss_driver.cuh"

namespace lossext {
namespace cuda {
namespace {

// The block's columns of row `row` of a problem whose RowLossArgs hold the
// block (input, weights and classes = width; targets global, int64).
template <class Loss, typename scalar_t, typename acc_t>
__device__ __forceinline__ RowContext<scalar_t, acc_t> open_block_row(int64_t row,
                                                                      const RowLossArgs<scalar_t, acc_t>& a,
                                                                      int64_t class_offset, int64_t num_classes) {
  constexpr bool kDense = (Loss::kNeeds & kDenseTarget) != 0;
  RowContext<scalar_t, acc_t> r;
  r.row = row;
  r.input = a.input + row * a.input_row_stride;
  r.grad = a.grad_input ? a.grad_input + row * a.classes : nullptr;
  r.weight = kDense ? a.dense_coefficients + row * a.classes : a.class_weight;
  const int64_t target = kDense ? 0 : a.target[row];
  r.ignored = !kDense && target == a.ignore_index;
  if (!kDense && !r.ignored) CUDA_KERNEL_ASSERT(target >= 0 && target < num_classes);
  // The target's column here, -1 in another block (dense rows: class 0, which max-other skips).
  const int64_t column = target - class_offset;
  r.target = column >= 0 && column < a.classes ? column : -1;
  r.target_logit =
      r.target >= 0 && !r.ignored ? loss_logit<Loss>(static_cast<acc_t>(r.input[r.target]), a.logit_softcap) : acc_t(0);
  return r;
}

template <class Loss, typename scalar_t, typename acc_t>
struct BlockStatisticsTask {
  using Block = BlockStatistics<Loss, acc_t>;
  using Partial = typename Block::Partial;
  RowLossArgs<scalar_t, acc_t> args;
  typename Loss::Params params;
  int64_t class_offset;
  int64_t num_classes;
  acc_t* statistics;        // (N, Block::kFields)
  int64_t* max_other_index;  // (N,), or nullptr

  __device__ __forceinline__ int64_t rows() const { return args.rows; }

  template <class Group>
  __device__ __forceinline__ void run(int64_t row, const Group& group) const {
    const RowContext<scalar_t, acc_t> r = open_block_row<Loss>(row, args, class_offset, num_classes);
    Block b = Block::empty();
    if (!r.ignored) {  // the same for the whole group, which reduces together below
      const auto scales = candidate_logit_scales<Loss, acc_t>(args.tensor_params);
      if constexpr (Partial::kScaled) {
        b.partial = group.all_reduce(gather_row_partial<Loss, Gather::kWithoutExpSums>(
                                         r, args, params, group.rank, group.size, Partial::empty(), scales),
                                     scales);
        const Partial start = Partial::empty(b.partial.max_logit, b.partial.min_logit);
        b.partial.take_exp_sums(group.all_reduce(
            gather_row_partial<Loss, Gather::kExpSums>(r, args, params, group.rank, group.size, start, scales),
            scales));
      } else {
        b.partial = group.all_reduce(gather_row_partial<Loss, Gather::kEverything>(
                                         r, args, params, group.rank, group.size, Partial::empty(), scales),
                                     scales);
      }
      if (b.partial.max_other_index >= 0) b.partial.max_other_index += class_offset;
      if (r.target >= 0) {
        b.target_logit = r.target_logit;
        b.target_weight = r.weight ? r.weight[r.target] : acc_t(1);
      }
    }
    if (group.rank == 0) {
      b.pack(statistics + row * Block::kFields, max_other_index ? max_other_index + row : nullptr);
    }
  }
};

template <class Loss, typename scalar_t, typename acc_t>
struct BlockLossAndGradientTask {
  using Block = BlockStatistics<Loss, acc_t>;
  using Partial = RowPartial<Loss, acc_t>;  // unused: the rows need no reduction
  RowLossArgs<scalar_t, acc_t> args;
  typename Loss::Params params;
  int64_t class_offset;
  int64_t num_classes;
  const acc_t* statistics;
  const int64_t* max_other_index;

  __device__ __forceinline__ int64_t rows() const { return args.rows; }

  template <class Group>
  __device__ __forceinline__ void run(int64_t row, const Group& group) const {
    const RowContext<scalar_t, acc_t> r = open_block_row<Loss>(row, args, class_offset, num_classes);
    if (r.ignored) {
      clear_ignored_row(r, args, group.rank, group.size);
      return;
    }
    const Block b = Block::unpack(statistics + row * Block::kFields,
                                  max_other_index ? max_other_index + row : nullptr);
    const RowStats<acc_t> s = b.finish(num_classes, args.tensor_params, params);
    finish_row<Loss>(r, s, args, params, group.rank, group.size, class_offset);
  }
};

// One thread per row: out = the combination of a and b (out may be a).
template <class Loss, typename acc_t>
__global__ void combine_statistics_kernel(const acc_t* a, const int64_t* a_index, const acc_t* b,
                                          const int64_t* b_index, acc_t* out, int64_t* out_index, int64_t rows,
                                          const acc_t* tensor_params) {
  using Block = BlockStatistics<Loss, acc_t>;
  const auto scales = candidate_logit_scales<Loss, acc_t>(tensor_params);
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; row < rows;
       row += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const Block first = Block::unpack(a + row * Block::kFields, a_index ? a_index + row : nullptr);
    const Block second = Block::unpack(b + row * Block::kFields, b_index ? b_index + row : nullptr);
    Block::combine(first, second, scales).pack(out + row * Block::kFields, out_index ? out_index + row : nullptr);
  }
}

template <class Loss, typename acc_t>
__global__ void rebase_statistics_kernel(const acc_t* statistics, const acc_t* max_statistics, acc_t* out,
                                         int64_t rows, const acc_t* tensor_params) {
  using Block = BlockStatistics<Loss, acc_t>;
  const auto scales = candidate_logit_scales<Loss, acc_t>(tensor_params);
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; row < rows;
       row += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t no_index = -1;  // the max-other index travels apart (row_statistics.h)
    Block block = Block::unpack(statistics + row * Block::kFields, &no_index);
    block.rebase(max_statistics + row * Block::kMaxFields, scales);
    int64_t unused_index;
    block.pack(out + row * Block::kFields, &unused_index);
  }
}

constexpr int kRowThreads = 256;

inline unsigned row_thread_blocks(int64_t rows) {
  return static_cast<unsigned>(std::min((rows + kRowThreads - 1) / kRowThreads, kMaxGridBlocks));
}

struct CudaRowStatisticsDriver {
  template <class Loss>
  static void block_statistics(const RowLossProblem& p, const typename Loss::Params& params, int64_t class_offset,
                               int64_t num_classes, at::Tensor& statistics, at::Tensor& max_other_index) {
    const c10::cuda::CUDAGuard device_guard(p.input.device());
    const auto acc = statistics.scalar_type();
    // The arguments of the row-loss kernels, for the block: nothing of the
    // reduction, the row values or a gradient is read.
    const at::Tensor no_weight_sum = at::zeros({}, statistics.options());
    at::Tensor no_row_values = at::empty({p.rows}, statistics.options().dtype(acc));
    at::Tensor no_gradient = at::empty({0}, p.input.options());
    at::Tensor no_param_grads = at::empty({0}, statistics.options());
    const auto launch = [&](const auto& a) {
      using Args = std::decay_t<decltype(a)>;
      using acc_t = typename Args::accumulation_type;
      using Task = BlockStatisticsTask<Loss, typename Args::scalar_type, acc_t>;
      int64_t* index = Task::Partial::kOtherIndex ? max_other_index.data_ptr<int64_t>() : nullptr;
      launch_rows(Task{a, params, class_offset, num_classes, statistics.data_ptr<acc_t>(), index}, p.rows, p.classes);
    };
    CudaRowLossDriver::with_kernel_args<Loss>(p, no_weight_sum, at::Tensor(), no_row_values, no_gradient,
                                              no_param_grads, launch);
  }

  template <class Loss>
  static void combine_statistics(const std::vector<at::Tensor>& statistics,
                                 const std::vector<at::Tensor>& max_other_index, const at::Tensor& tensor_params,
                                 at::Tensor& combined, at::Tensor& combined_index) {
    const c10::cuda::CUDAGuard device_guard(combined.device());
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const int64_t rows = combined.size(0);
    AT_DISPATCH_FLOATING_TYPES(combined.scalar_type(), "lossext_combine_statistics_cuda", [&] {
      using acc_t = scalar_t;
      constexpr bool kIndex = BlockStatistics<Loss, acc_t>::Partial::kOtherIndex;
      const auto index_of = [&](const at::Tensor& t) { return kIndex ? t.data_ptr<int64_t>() : nullptr; };
      const acc_t* params = tensor_params.defined() ? tensor_params.data_ptr<acc_t>() : nullptr;
      combined.copy_(statistics[0]);
      combined_index.copy_(max_other_index[0]);
      // One block at a time, in the given order (as the CPU kernel).
      for (size_t b = 1; b < statistics.size(); ++b) {
        combine_statistics_kernel<Loss, acc_t><<<row_thread_blocks(rows), kRowThreads, 0, stream>>>(
            combined.data_ptr<acc_t>(), index_of(combined_index), statistics[b].data_ptr<acc_t>(),
            index_of(max_other_index[b]), combined.data_ptr<acc_t>(), index_of(combined_index), rows, params);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    });
  }

  template <class Loss>
  static void rebase_statistics(const at::Tensor& statistics, const at::Tensor& max_statistics,
                                const at::Tensor& tensor_params, at::Tensor& rebased) {
    const c10::cuda::CUDAGuard device_guard(statistics.device());
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const int64_t rows = statistics.size(0);
    AT_DISPATCH_FLOATING_TYPES(statistics.scalar_type(), "lossext_rebase_statistics_cuda", [&] {
      const scalar_t* params = tensor_params.defined() ? tensor_params.data_ptr<scalar_t>() : nullptr;
      rebase_statistics_kernel<Loss, scalar_t><<<row_thread_blocks(rows), kRowThreads, 0, stream>>>(
          statistics.data_ptr<scalar_t>(), max_statistics.data_ptr<scalar_t>(), rebased.data_ptr<scalar_t>(), rows,
          params);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }

  template <class Loss>
  static void block_loss_and_gradient(const RowLossProblem& p, const typename Loss::Params& params,
                                      int64_t class_offset, int64_t num_classes, const at::Tensor& statistics,
                                      const at::Tensor& max_other_index, const at::Tensor& target_weight_sum,
                                      const at::Tensor& upstream, at::Tensor& row_values, at::Tensor& grad_input,
                                      at::Tensor& row_param_grads) {
    const c10::cuda::CUDAGuard device_guard(p.input.device());
    const auto launch = [&](const auto& a) {
      using Args = std::decay_t<decltype(a)>;
      using acc_t = typename Args::accumulation_type;
      using Task = BlockLossAndGradientTask<Loss, typename Args::scalar_type, acc_t>;
      const int64_t* index = BlockStatistics<Loss, acc_t>::Partial::kOtherIndex
                                 ? max_other_index.data_ptr<int64_t>()
                                 : nullptr;
      launch_rows(Task{a, params, class_offset, num_classes, statistics.data_ptr<acc_t>(), index}, p.rows, p.classes);
    };
    CudaRowLossDriver::with_kernel_args<Loss>(p, target_weight_sum, upstream, row_values, grad_input,
                                              row_param_grads, launch);
  }
};

#define LOSSEXT_REGISTER_CUDA_ROW_STATISTICS(name, Loss)                                                     \
  m.impl(#name "_block_statistics", &row_block_statistics<Loss, CudaRowStatisticsDriver>);                   \
  m.impl(#name "_combine_statistics", &row_combine_statistics<Loss, CudaRowStatisticsDriver>);               \
  m.impl(#name "_rebase_statistics", &row_rebase_statistics<Loss, CudaRowStatisticsDriver>);                 \
  m.impl(#name "_block_loss_and_gradient", &row_block_loss_and_gradient<Loss, CudaRowStatisticsDriver>);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) { LOSSEXT_FOR_EACH_ROW_LOSS(LOSSEXT_REGISTER_CUDA_ROW_STATISTICS) }

#undef LOSSEXT_REGISTER_CUDA_ROW_STATISTICS

}  // namespace
}  // namespace cuda
}  // namespace lossext
