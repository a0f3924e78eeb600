"""Build lossext._C: the CPU kernels always, the CUDA kernels when torch has CUDA and nvcc is found.

Environment (read once here, printed at build time):
  FORCE_CUDA=1            compile csrc/cuda/ even if torch.cuda.is_available() is False (CI's compile check)
  LOSSEXT_SKIP_CUDA=1     never compile csrc/cuda/
  TORCH_CUDA_ARCH_LIST    CUDA architectures (torch's variable); default "8.0;9.0"
  LOSSEXT_CPU_FLAGS       extra C++ flags for the CPU kernels; default: this machine's AVX-512 or AVX2+FMA+F16C
                          flags, else none (set it to "" for a portable build)
  DEBUG=1                 -O0 -g
  MAX_JOBS                parallel compile jobs (torch's variable)
"""

import glob
import os
import shutil

from setuptools import find_packages, setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError:
    # pip's build isolation runs this in a fresh environment without torch, and lossext must compile
    # against the torch it will run with (an extension built against another torch may not load):
    # pyproject.toml therefore does not list torch, and the build stops here instead of fetching one.
    raise SystemExit("lossext builds against the torch already installed, which this build environment "
                     "does not see: install torch, then `pip install --no-build-isolation .` (or "
                     "`pip install --no-build-isolation lossext-<version>.tar.gz`)") from None

ROOT = os.path.dirname(os.path.abspath(__file__))


def env_flag(name: str) -> bool:
    return os.environ.get(name, "0").lower() in ("1", "true", "yes", "on")


def host_cpu_flags() -> list:
    """The vector ISA of this machine for the CPU kernels (csrc/cpu/vec/): AVX-512 (16-wide) when
    /proc/cpuinfo shows avx512f/bw/vl/dq, else AVX2+FMA+F16C (8-wide), else none (portable SSE2)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), []))
    except OSError:
        return []
    if not {"avx2", "fma", "f16c"} <= flags:
        return []
    avx2 = ["-mavx2", "-mfma", "-mf16c"]
    avx512 = ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq"]
    return avx2 + avx512 if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags else avx2


FORCE_CUDA = env_flag("FORCE_CUDA")
SKIP_CUDA = env_flag("LOSSEXT_SKIP_CUDA")
DEBUG = env_flag("DEBUG")
NVCC = shutil.which("nvcc") or (os.path.join(CUDA_HOME, "bin", "nvcc") if CUDA_HOME else None)
TORCH_HAS_CUDA = torch.version.cuda is not None
WITH_CUDA = not SKIP_CUDA and TORCH_HAS_CUDA and NVCC is not None and (torch.cuda.is_available() or FORCE_CUDA)
CPU_FLAGS = os.environ["LOSSEXT_CPU_FLAGS"].split() if "LOSSEXT_CPU_FLAGS" in os.environ else host_cpu_flags()
if WITH_CUDA and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
    os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0"

print("lossext build configuration:")
print(f"  torch {torch.__version__} (CUDA {torch.version.cuda}), CUDA_HOME={CUDA_HOME}, nvcc={NVCC}")
print(f"  FORCE_CUDA={FORCE_CUDA} LOSSEXT_SKIP_CUDA={SKIP_CUDA} DEBUG={DEBUG} -> WITH_CUDA={WITH_CUDA}")
print(f"  TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST', '(unset)')} CPU flags={CPU_FLAGS}")

sources = sorted(glob.glob(os.path.join("csrc", "ops", "*.cpp")) + glob.glob(os.path.join("csrc", "cpu", "*.cpp")))
optimisation = ["-O0", "-g"] if DEBUG else ["-O3"]
# -fopenmp: at::parallel_for is inline in ATen's headers and runs its range
# serially unless the including file is compiled with OpenMP (_OPENMP defines
# INTRA_OP_PARALLEL); linking it resolves to the libgomp.so.1 torch has loaded.
# -ffp-contract=fast: ISO C++ mode (-std=c++20) otherwise forbids GCC to fuse
# a * b + c into one FMA, which doubles the cost of the vector polynomials
# (csrc/cpu/vec/math.h) and rounds twice instead of once. Not -ffast-math: NaN,
# inf and signed-zero semantics are unchanged.
extra_compile_args = {"cxx": ["-std=c++20", *optimisation, *CPU_FLAGS, "-fopenmp", "-ffp-contract=fast"]}
define_macros = []
include_dirs = [os.path.join(ROOT, "csrc")]

if WITH_CUDA:
    sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
    define_macros.append(("LOSSEXT_WITH_CUDA", None))
    extra_compile_args["nvcc"] = ["-std=c++20", *optimisation, "--expt-relaxed-constexpr", "-lineinfo"]
    # ATen/cuda/CUDAContext.h includes the cuBLAS, cuSPARSE and cuSOLVER headers, which a CUDA
    # toolkit without those libraries lacks; pip's CUDA torch has them in nvidia/cu<major>/include
    # beside it. -isystem searches them after the toolkit's own headers.
    site_packages = os.path.dirname(os.path.dirname(torch.__file__))
    library_headers = os.path.join(site_packages, "nvidia", "cu" + torch.version.cuda.split(".")[0], "include")
    if os.path.isdir(library_headers):
        extra_compile_args["nvcc"] += ["-isystem", library_headers]
    extension = CUDAExtension
else:
    extension = CppExtension

setup(
    name="lossext",
    version="0.1.0",
    description="Fused C++/CUDA kernels for classification losses and activations, for PyTorch",
    packages=find_packages(include=["lossext", "lossext.*"]),
    ext_modules=[
        extension(
            name="lossext._C",
            sources=sources,
            include_dirs=include_dirs,
            define_macros=define_macros,
            extra_compile_args=extra_compile_args,
            extra_link_args=["-fopenmp"],
        )
    ],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    python_requires=">=3.9",
    install_requires=["torch>=2.11"],
)
