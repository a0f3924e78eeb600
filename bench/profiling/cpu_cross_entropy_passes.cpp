// Where the CPU cross-entropy kernel's time goes, and what candidate changes would save.
//
// The loops of csrc/cpu/row_loss_driver.h for CrossEntropy (fp32 logits, no class weights,
// label_smoothing 0; as of commit 4e2876c) are rebuilt here on raw arrays, then changed one
// at a time, cumulatively, on (4096, 32000) fp32 (512 MB of logits, 512 MB of gradient):
//   driver        the driver's three passes as they are
//   +max4         pass 1 keeps four independent max accumulators (plain vmaxps) and detects
//                 NaN with an unordered compare, off the dependency chain: the driver's single
//                 NaN-propagating max (cmp, cmp, or, blendv) is a ~7-cycle chain per 8 elements
//   +no-smooth    pass 2 skips sum_j w_j (o_j - m) when label_smoothing == 0
//   +direct       pass 2 reads fp32 logits from the (L2-resident) input row instead of a
//                 converted copy, so pass 1 stores nothing (bf16/fp16 still need the copy)
//   +lean-exp     exp without the overflow clamp, inf select and NaN select: the driver only
//                 exponentiates o_j - max <= 0, and NaN propagates through the arithmetic
//   +nt-store     the gradient written with non-temporal stores (no read-for-ownership)
// Every variant computes the same gradient; the last line checks it against the driver's.
// It does not use at::parallel_for but OpenMP directly, so it shows what the kernel gets
// once the extension is compiled with -fopenmp (see bench/README.md).
//
// Build and run (torch's headers only for c10::BFloat16/Half in vec.h):
//   g++ -O3 -std=c++17 -mavx2 -mfma -mf16c -fopenmp -Icsrc \
//       -I$(python -c 'import torch.utils.cpp_extension as e; print(e.include_paths()[0])') \
//       bench/profiling/cpu_cross_entropy_passes.cpp -o /tmp/ce_passes && /tmp/ce_passes 1 && /tmp/ce_passes 2
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cpu/vec.h"

using lossext::cpu::VecF;

namespace {

constexpr long kRows = 4096, kClasses = 32000;

enum Change : unsigned { kMax4 = 1, kNoSmooth = 2, kDirect = 4, kLeanExp = 8, kNtStore = 16 };

// exp(x) for x <= 0 (the driver's Cephes scheme minus the overflow and NaN selects).
inline VecF exp_nonpositive(VecF x) {
  typedef float float8_t __attribute__((vector_size(32)));
  typedef int32_t int8x32_t __attribute__((vector_size(32)));
  constexpr float kLow = -87.3365478515625f;
  const float8_t clamped = x.v < kLow ? float8_t{} + kLow : x.v;
  const float8_t shifted = clamped * 1.44269504088896341f + 12582912.0f;
  const float8_t n = shifted - 12582912.0f;
  const float8_t r = (clamped - n * 0.693359375f) - n * -2.12194440e-4f;
  float8_t poly = float8_t{} + 1.9875691500e-4f;
  poly = poly * r + 1.3981999507e-3f;
  poly = poly * r + 8.3334519073e-3f;
  poly = poly * r + 4.1665795894e-2f;
  poly = poly * r + 1.6666665459e-1f;
  poly = poly * r + 5.0000001201e-1f;
  const float8_t er = poly * (r * r) + r + 1.0f;
  int8x32_t n_bits;
  std::memcpy(&n_bits, &shifted, sizeof(n_bits));
  const int8x32_t exponent = ((n_bits - 0x4B400000) + 127) << 23;
  float8_t two_n;
  std::memcpy(&two_n, &exponent, sizeof(two_n));
  const float8_t result = er * two_n;
  return VecF(x.v < kLow ? float8_t{} : result);
}

template <unsigned kChanges>
void cross_entropy_rows(const float* logits, const int64_t* target, float* grad, long row_begin, long row_end,
                        float scale) {
  std::vector<float> scratch(kClasses);
  float* z = scratch.data();
  for (long row = row_begin; row < row_end; ++row) {
    const float* in = logits + row * kClasses;
    float* g = grad + row * kClasses;
    // Pass 1: max (and the converted copy, unless pass 2 reads the input directly).
    float m;
    if (kChanges & kMax4) {
      __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0, unordered = _mm256_setzero_ps();
      for (long j = 0; j < kClasses; j += 32) {
        const __m256 a = _mm256_loadu_ps(in + j), b = _mm256_loadu_ps(in + j + 8);
        const __m256 c = _mm256_loadu_ps(in + j + 16), d = _mm256_loadu_ps(in + j + 24);
        if (!(kChanges & kDirect)) {
          _mm256_storeu_ps(z + j, a), _mm256_storeu_ps(z + j + 8, b);
          _mm256_storeu_ps(z + j + 16, c), _mm256_storeu_ps(z + j + 24, d);
        }
        m0 = _mm256_max_ps(m0, a), m1 = _mm256_max_ps(m1, b), m2 = _mm256_max_ps(m2, c), m3 = _mm256_max_ps(m3, d);
        unordered = _mm256_or_ps(unordered, _mm256_or_ps(_mm256_cmp_ps(a, b, _CMP_UNORD_Q),
                                                         _mm256_cmp_ps(c, d, _CMP_UNORD_Q)));
      }
      const VecF largest(_mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
      m = _mm256_movemask_ps(unordered) ? NAN : largest.max();
    } else {
      VecF vmax(-INFINITY);
      for (long j = 0; j < kClasses; j += 8) {
        const VecF x = VecF::load(in + j);
        x.store(z + j);
        vmax = lossext::cpu::maximum(vmax, x);
      }
      m = vmax.max();
    }
    // Pass 2: e_j = exp(o_j - m) into the scratch row, and the sums.
    const VecF vm(m), one(1.f);
    const float* source = (kChanges & kDirect) ? in : z;
    VecF sum_e0(0.f), sum_e1(0.f), sum_wx(0.f);
    for (long j = 0; j < kClasses; j += 16) {
      const VecF s0 = VecF::load(source + j) - vm, s1 = VecF::load(source + j + 8) - vm;
      const VecF e0 = (kChanges & kLeanExp) ? exp_nonpositive(s0) : lossext::cpu::exponential(s0);
      const VecF e1 = (kChanges & kLeanExp) ? exp_nonpositive(s1) : lossext::cpu::exponential(s1);
      e0.store(z + j), e1.store(z + j + 8);
      sum_e0 = sum_e0 + e0, sum_e1 = sum_e1 + e1;
      if (!(kChanges & kNoSmooth)) sum_wx = sum_wx + one * s0 + one * s1;
    }
    const float sum_exp = (sum_e0 + sum_e1).sum();
    const float sum_wx_total = sum_wx.sum();  // what the smoothing term would use
    // Pass 3: the gradient A e_j - B w_j, then the target's - D.
    const VecF a(scale / sum_exp), b(0.f * sum_wx_total);
    for (long j = 0; j < kClasses; j += 8) {
      const VecF value = a * VecF::load(z + j) - b * one;
      if (kChanges & kNtStore) {
        __m256 raw;
        std::memcpy(&raw, &value.v, sizeof(raw));
        _mm256_stream_ps(g + j, raw);
      } else {
        value.store(g + j);
      }
    }
    if (kChanges & kNtStore) _mm_sfence();
    g[target[row]] -= scale;
  }
}

template <unsigned kChanges>
double run_ms(const float* logits, const int64_t* target, float* grad, int threads) {
  const auto start = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
  {
    const long chunk = (kRows + omp_get_num_threads() - 1) / omp_get_num_threads();
    const long begin = omp_get_thread_num() * chunk;
    cross_entropy_rows<kChanges>(logits, target, grad, begin, std::min(kRows, begin + chunk), 1.f / kRows);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() * 1e3;
}

double copy_ms(const float* src, float* dst, int threads, bool non_temporal) {
  const auto start = std::chrono::steady_clock::now();
#pragma omp parallel for num_threads(threads)
  for (long i = 0; i < kRows * kClasses; i += 8) {
    if (non_temporal) {
      _mm256_stream_ps(dst + i, _mm256_load_ps(src + i));
    } else {
      _mm256_store_ps(dst + i, _mm256_load_ps(src + i));
    }
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() * 1e3;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 11;
  const size_t bytes = size_t(kRows) * kClasses * sizeof(float);
  float* logits = static_cast<float*>(std::aligned_alloc(64, bytes));
  float* grad = static_cast<float*>(std::aligned_alloc(64, bytes));
  float* reference = static_cast<float*>(std::aligned_alloc(64, bytes));
  std::vector<int64_t> target(kRows);
  for (long i = 0; i < kRows * kClasses; ++i) logits[i] = float(int(i * 2654435761u % 1000) - 500) / 125.f;
  for (long r = 0; r < kRows; ++r) target[r] = (r * 7919) % kClasses;
  std::memset(grad, 0, bytes);
  run_ms<0>(logits, target.data(), reference, threads);

  constexpr unsigned kLadder[] = {0, kMax4, kMax4 | kNoSmooth, kMax4 | kNoSmooth | kDirect,
                                  kMax4 | kNoSmooth | kDirect | kLeanExp,
                                  kMax4 | kNoSmooth | kDirect | kLeanExp | kNtStore};
  const char* names[] = {"driver", "+max4", "+no-smooth", "+direct", "+lean-exp", "+nt-store",
                         "copy (stores)", "copy (non-temporal)"};
  constexpr int kLines = 8;
  std::vector<std::vector<double>> ms(kLines);
  // Interleaved rounds, so a burst of other load on a shared machine hits every line alike.
  for (int round = 0; round < rounds; ++round) {
    ms[0].push_back(run_ms<kLadder[0]>(logits, target.data(), grad, threads));
    ms[1].push_back(run_ms<kLadder[1]>(logits, target.data(), grad, threads));
    ms[2].push_back(run_ms<kLadder[2]>(logits, target.data(), grad, threads));
    ms[3].push_back(run_ms<kLadder[3]>(logits, target.data(), grad, threads));
    ms[4].push_back(run_ms<kLadder[4]>(logits, target.data(), grad, threads));
    ms[5].push_back(run_ms<kLadder[5]>(logits, target.data(), grad, threads));
    ms[6].push_back(copy_ms(logits, grad, threads, false));
    ms[7].push_back(copy_ms(logits, grad, threads, true));
  }
  run_ms<kLadder[5]>(logits, target.data(), grad, threads);
  double worst = 0;
  for (long i = 0; i < kRows * kClasses; ++i) {
    worst = std::max(worst, double(std::fabs(grad[i] - reference[i])) / (std::fabs(reference[i]) + 1e-12));
  }
  std::printf("(4096, 32000) fp32, %d thread(s), %d interleaved rounds; GB/s = 1 GiB moved / median\n", threads, rounds);
  std::printf("  %-22s %9s %9s %7s\n", "variant", "min ms", "median ms", "GB/s");
  for (int i = 0; i < kLines; ++i) {
    std::sort(ms[i].begin(), ms[i].end());
    const double median = ms[i][ms[i].size() / 2];
    std::printf("  %-22s %9.1f %9.1f %7.1f\n", names[i], ms[i][0], median, 2.0 * bytes / median / 1e6);
  }
  std::printf("  largest relative difference of the last variant's gradient from the driver's: %.2e\n", worst);
}
