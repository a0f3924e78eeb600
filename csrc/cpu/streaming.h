// When the CPU drivers write an output with streaming (non-temporal) stores;
// the stores themselves are in vec/memory.h.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>

namespace lossext {
namespace cpu {

// Whether to write `bytes` of output at `out` with streaming stores, which
// skip the read-for-ownership of every line (a third of the DRAM traffic of
// a read-logits, write-gradient pass) but leave nothing in the caches for the
// output's consumer. Two conditions:
// * The output is larger than 3/4 of the last-level cache, as glibc's memcpy
//   decides, but at most 24 MiB: sysconf reports the whole socket's cache
//   (480 MiB on this project's 2-core VM), not the share a core can count on.
//   Measured there, cross-entropy with C = 4000, fp32 and bf16: ordinary
//   stores 7-10% faster up to 16 MiB of gradient, streaming 13-19% faster at
//   32 MiB and 10-56% above.
// * Its first and last pages are resident. A freshly mapped output (glibc
//   maps every large allocation anew unless told to reuse memory) faults on
//   each page, and the kernel's page clearing leaves the page in cache, where
//   ordinary stores find it: streamed, ReLU's float32 forward+backward on 2^26
//   elements took 202 ms against PyTorch's 144 ms in that environment,
//   against 38 and 53 ms in the steady state of reused memory.
// The environment variable LOSSEXT_STREAMING_STORES_ABOVE (bytes), read at
// every call, replaces both (the tests set 0 to stream every output).
inline bool pages_resident(const void* out, int64_t bytes) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto first = reinterpret_cast<uintptr_t>(out) / page * page;
  const auto last = (reinterpret_cast<uintptr_t>(out) + static_cast<uintptr_t>(bytes) - 1) / page * page;
  unsigned char resident = 0;
  for (const uintptr_t start : {first, last}) {
    if (mincore(reinterpret_cast<void*>(start), page, &resident) != 0 || (resident & 1) == 0) return false;
  }
  return true;
}

inline bool use_streaming_stores(const void* out, int64_t bytes) {
  if (const char* above = std::getenv("LOSSEXT_STREAMING_STORES_ABOVE")) return bytes > std::atoll(above);
  static const int64_t threshold = [] {
    constexpr int64_t kMostBytes = int64_t(24) << 20;
    const long cache_bytes = sysconf(_SC_LEVEL3_CACHE_SIZE);
    return cache_bytes > 0 ? std::min(static_cast<int64_t>(cache_bytes) / 4 * 3, kMostBytes) : kMostBytes;
  }();
  return bytes > threshold && pages_resident(out, bytes);
}

}  // namespace cpu
}  // namespace lossext
