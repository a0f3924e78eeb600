// The Python extension module lossext._C. Importing it runs the static
// TORCH_LIBRARY registrations of every op; the module itself only reports how
// it was built.
#include <torch/extension.h>

namespace {

bool built_with_cuda() {
#ifdef LOSSEXT_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "lossext: fused C++/CUDA kernels for classification losses and activations";
  m.def("built_with_cuda", &built_with_cuda, "Whether the CUDA kernels were compiled into this module");
  m.attr("torch_version") = TORCH_VERSION;
#if defined(__AVX512F__)
  m.attr("cpu_vector_isa") = "avx512";
#elif defined(__AVX2__)
  m.attr("cpu_vector_isa") = "avx2";
#else
  m.attr("cpu_vector_isa") = "baseline";
#endif
}
