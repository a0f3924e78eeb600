// The Python extension module lossext._C. Importing it runs the static
// TORCH_LIBRARY registrations of every op; the module itself reports how it
// was built and which ops the C++ lists define, so the Python side can check
// its own tables against them.
#include <torch/extension.h>

#include <string>
#include <vector>

#include "activations/all_activations.h"
#include "losses/all_losses.h"
#include "ops/workspace.h"

namespace {

bool built_with_cuda() {
#ifdef LOSSEXT_WITH_CUDA
  return true;
#else
  return false;
#endif
}

#define LOSSEXT_ROW_LOSS_NAME(name, Loss) #name,
#define LOSSEXT_ACTIVATION_NAME(name, forward_arguments, backward_arguments) #name,

std::vector<std::string> row_loss_names() { return {LOSSEXT_FOR_EACH_ROW_LOSS(LOSSEXT_ROW_LOSS_NAME)}; }
std::vector<std::string> activation_names() { return {LOSSEXT_FOR_EACH_ACTIVATION(LOSSEXT_ACTIVATION_NAME)}; }

#undef LOSSEXT_ACTIVATION_NAME
#undef LOSSEXT_ROW_LOSS_NAME

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "lossext: fused C++/CUDA kernels for classification losses and activations";
  m.def("built_with_cuda", &built_with_cuda, "Whether the CUDA kernels were compiled into this module");
  m.def("row_loss_names", &row_loss_names,
        "The row losses of LOSSEXT_FOR_EACH_ROW_LOSS (csrc/losses/all_losses.h), in its order: each <name> has the "
        "ops lossext::<name>_forward, <name>_forward_out and <name>_backward");
  m.def("activation_names", &activation_names,
        "The activations of LOSSEXT_FOR_EACH_ACTIVATION (csrc/activations/all_activations.h), in its order: each "
        "<name> has the ops lossext::<name>_forward and <name>_backward");
  m.def("empty_cache", [] { lossext::cpu_workspace_pool().clear(); },
        "Free the CPU scratch buffers the fused heads keep between calls (ops/workspace.h)");
  m.def("cached_bytes", [] { return lossext::cpu_workspace_pool().pooled_bytes(); },
        "Bytes held by the CPU scratch buffers the fused heads keep between calls");
  m.attr("torch_version") = TORCH_VERSION;
#if defined(__AVX512F__)
  m.attr("cpu_vector_isa") = "avx512";
#elif defined(__AVX2__)
  m.attr("cpu_vector_isa") = "avx2";
#else
  m.attr("cpu_vector_isa") = "baseline";
#endif
}
