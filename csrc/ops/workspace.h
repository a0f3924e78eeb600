// Scratch buffers kept between calls of the CPU fused heads.
//
// Why: on CPU there is no caching allocator. glibc serves a block above its
// mmap threshold (at most 32 MiB) with a fresh mmap and unmaps it on free, so
// a 128 MiB logits buffer allocated per call is page-faulted in again on
// every training step: 32768 faults of 4 KiB, each zeroing its page (measured
// here: 48,752 faults per step of the (4096, 512, 32000) fp32 head, two
// thirds of them its logits buffer). A lease takes a buffer from a small
// process-wide pool and gives it back when it goes out of scope, so the next
// call finds its pages mapped. Only scratch memory that never leaves the op
// is leased; returned tensors are always fresh allocations.
//
// The pool keeps at most kMaxPooledBuffers buffers (one per thread that runs a
// head at the same time, up to that many); lossext.empty_cache() frees them.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

namespace lossext {

class WorkspacePool {
 public:
  static constexpr size_t kMaxPooledBuffers = 4;

  // A byte buffer of at least `bytes` bytes: the smallest pooled one that is
  // large enough, else a new one of exactly `bytes` bytes.
  at::Tensor take(int64_t bytes) {
    std::lock_guard<std::mutex> guard(mutex_);
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->numel() >= bytes && (best == free_.end() || it->numel() < best->numel())) best = it;
    }
    if (best == free_.end()) return at::empty({bytes}, at::TensorOptions().dtype(at::kByte));
    at::Tensor buffer = std::move(*best);
    free_.erase(best);
    return buffer;
  }

  // Back into the pool; past kMaxPooledBuffers the smallest buffer is freed.
  void give_back(at::Tensor buffer) {
    std::lock_guard<std::mutex> guard(mutex_);
    free_.push_back(std::move(buffer));
    if (free_.size() > kMaxPooledBuffers) {
      free_.erase(std::min_element(free_.begin(), free_.end(),
                                   [](const at::Tensor& a, const at::Tensor& b) { return a.numel() < b.numel(); }));
    }
  }

  void clear() {
    std::lock_guard<std::mutex> guard(mutex_);
    free_.clear();
  }

  int64_t pooled_bytes() {
    std::lock_guard<std::mutex> guard(mutex_);
    int64_t total = 0;
    for (const at::Tensor& buffer : free_) total += buffer.numel();
    return total;
  }

 private:
  std::mutex mutex_;
  std::vector<at::Tensor> free_;
};

// The one pool of the process (an inline function's static: one instance in the extension).
inline WorkspacePool& cpu_workspace_pool() {
  static WorkspacePool pool;
  return pool;
}

// A leased CPU buffer viewed as a dense tensor of `sizes` and `dtype`; the
// bytes go back to the pool when the lease is destroyed, so the tensor it
// hands out must not outlive it.
class WorkspaceLease {
 public:
  WorkspaceLease(at::IntArrayRef sizes, at::ScalarType dtype) {
    int64_t elements = 1;
    for (int64_t size : sizes) elements *= size;
    const int64_t element_size = static_cast<int64_t>(c10::elementSize(dtype));
    // At least one element so that an empty view still has storage to narrow.
    bytes_ = cpu_workspace_pool().take(std::max<int64_t>(elements, 1) * element_size);
    tensor_ = bytes_.narrow(0, 0, elements * element_size).view(dtype).view(sizes);
  }
  WorkspaceLease(const WorkspaceLease&) = delete;
  WorkspaceLease& operator=(const WorkspaceLease&) = delete;
  ~WorkspaceLease() {
    tensor_.reset();
    cpu_workspace_pool().give_back(std::move(bytes_));
  }

  const at::Tensor& tensor() const { return tensor_; }

 private:
  at::Tensor bytes_;
  at::Tensor tensor_;
};

}  // namespace lossext
