"""Loading lossext._C, and the choice between the compiled kernels and the pure-PyTorch reference."""

import os
import warnings
from typing import Optional

import torch

try:
    from . import _C  # noqa: F401  (importing it registers the torch.ops.lossext kernels)

    _LOAD_ERROR: Optional[BaseException] = None
except Exception as error:  # any failure to load means: run the reference, and say why
    _C = None
    _LOAD_ERROR = error

_VALID_BACKENDS = ("extension", "reference")
_forced_backend: Optional[str] = os.environ.get("LOSSEXT_BACKEND") or None
if _forced_backend is not None and _forced_backend not in _VALID_BACKENDS:
    raise ValueError(f"LOSSEXT_BACKEND must be one of {_VALID_BACKENDS}, got {_forced_backend!r}")
_warned = False


def extension_loaded() -> bool:
    """Whether lossext._C was imported, whatever backend is selected."""
    return _C is not None


def backend() -> str:
    """The backend the API runs: "extension" (lossext._C's kernels) or "reference" (plain PyTorch)."""
    if _forced_backend == "reference" or _C is None:
        return "reference"
    return "extension"


def set_backend(name: Optional[str]) -> None:
    """Force "reference" or "extension" (as LOSSEXT_BACKEND does), or None for the default."""
    global _forced_backend
    if name is not None and name not in _VALID_BACKENDS:
        raise ValueError(f"backend must be one of {_VALID_BACKENDS} or None, got {name!r}")
    if name == "extension" and _C is None:
        raise RuntimeError(f"lossext._C is not available: {_LOAD_ERROR!r}")
    _forced_backend = name


def _warn_fallback_once(reason: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"lossext: running the pure-PyTorch reference because {reason}", RuntimeWarning, stacklevel=3)


def use_extension(device: torch.device) -> bool:
    """Whether a call on `device` runs the compiled kernels; warns once when it cannot."""
    if _forced_backend == "reference":
        return False
    if _C is None:
        _warn_fallback_once(f"lossext._C failed to load: {_LOAD_ERROR!r}")
        return False
    if device.type in ("cpu", "meta"):  # meta tensors run the ops' fake kernels: shapes, no values
        return True
    if device.type == "cuda" and _C.built_with_cuda():
        return True
    _warn_fallback_once(f"lossext._C has no kernels for {device.type} tensors")
    return False


def empty_cache() -> None:
    """Free the CPU scratch buffers the fused heads (lossext.linear_loss, linear_cross_entropy) keep between calls.

    On CPU there is no caching allocator, and glibc unmaps a freed buffer above its mmap threshold, so a head that
    allocated its (chunk, V) logits buffer per call would page-fault it in again on every step. The heads lease
    that buffer (one chunk of logits: 128 MiB by default) and, for half-precision inputs, the float32
    weight-gradient sum (V x H x 4 bytes: 525 MB for V = 128256, H = 1024) from a small pool that keeps up to four
    buffers for the next call; this frees them, as torch.cuda.empty_cache() does for CUDA's allocator. Nothing is
    held when the extension is not loaded.
    """
    if _C is not None:
        _C.empty_cache()


def cached_bytes() -> int:
    """The bytes the CPU scratch buffers of the fused heads hold between calls (0 after empty_cache())."""
    return int(_C.cached_bytes()) if _C is not None else 0
