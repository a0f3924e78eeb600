"""The allocator a benchmark process runs with: tcmalloc, tuned glibc, torch's hugepages, or glibc's defaults.

A CPU training step frees its large tensors and allocates them again. Whether
the second allocation reuses the first one's pages (a steady state) or gets
fresh ones that page-fault in again (~200 ms for a 524 MB gradient here) is
the allocator's business, and it is set before Python starts (LD_PRELOAD and
glibc's MALLOC_* variables are read at process start), so a run that wants
another allocator re-executes itself with `environment_for`. Why tuned glibc
is not enough: bench/README.md.
"""

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional

# glibc's own knobs for a steady state: no mmap for blocks under 4 GiB, no trimming of the heap under 64 GiB.
GLIBC_TUNED = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
# torch's switch for 2 MiB-aligned, madvise(MADV_HUGEPAGE) allocations of large tensors.
TORCH_THP = {"THP_MEM_ALLOC_ENABLE": "1"}
# gperftools' tcmalloc: Debian/Ubuntu package libtcmalloc-minimal4 (scripts/setup_env.sh installs it as root).
# Release rate 0: it never hands freed pages back to the OS. At its default (1) it does so gradually (and, as we
# read gperftools' page heap, releases all free spans when an allocation misses its free lists while much is
# free): F.cross_entropy's two 524 MB blocks, interleaved with lossext's one, then faulted in again on some steps.
TCMALLOC_TUNED = {"TCMALLOC_RELEASE_RATE": "0"}
ALLOCATOR_VARIABLES = (*GLIBC_TUNED, *TORCH_THP, *TCMALLOC_TUNED)
TCMALLOC_SONAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
TCMALLOC_PACKAGE = "libtcmalloc-minimal4"

DEFAULT = "default"
STEADY_ALLOCATORS = ("tcmalloc", "glibc-tuned", "thp")  # what --steady-allocator accepts besides auto


def find_tcmalloc() -> Optional[str]:
    """The path of tcmalloc's shared library in the dynamic linker's cache, or None."""
    for ldconfig in ("ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"):  # /sbin is not on every PATH
        try:
            cache = subprocess.run([ldconfig, "-p"], capture_output=True, text=True).stdout
        except OSError:
            continue
        # Lines read "\tlibtcmalloc_minimal.so.4 (libc6,x86-64) => /lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4".
        libraries = [(left.split()[0], path.strip()) for left, _, path in
                     (line.partition(" => ") for line in cache.splitlines() if " => " in line)]
        for soname in TCMALLOC_SONAMES:
            for name, path in libraries:
                if name == soname and Path(path).exists():
                    return path
        return None
    return None


def _is_tcmalloc(library: str) -> bool:
    return Path(library).name.startswith("libtcmalloc")


def _preloads(env: Mapping[str, str]) -> List[str]:
    # ld.so separates LD_PRELOAD entries by spaces or colons.
    return [entry for entry in re.split(r"[:\s]+", env.get("LD_PRELOAD", "")) if entry]


def environment_for(allocator: str, env: Mapping[str, str]) -> Dict[str, str]:
    """`env` with the settings of `allocator` (DEFAULT or one of STEADY_ALLOCATORS) and no other allocator's."""
    result = {k: v for k, v in env.items() if k not in ALLOCATOR_VARIABLES and k != "LD_PRELOAD"}
    preloads = [entry for entry in _preloads(env) if not _is_tcmalloc(entry)]
    if allocator == "tcmalloc":
        library = find_tcmalloc()
        if library is None:
            raise SystemExit(f"tcmalloc not found: install {TCMALLOC_PACKAGE} (apt-get install -y "
                             f"{TCMALLOC_PACKAGE}, or scripts/setup_env.sh as root)")
        preloads.insert(0, library)
        result.update(TCMALLOC_TUNED)
    elif allocator == "glibc-tuned":
        result.update(GLIBC_TUNED)
    elif allocator == "thp":
        result.update(TORCH_THP)
    elif allocator != DEFAULT:
        raise ValueError(f"unknown allocator {allocator!r}")
    if preloads:
        result["LD_PRELOAD"] = " ".join(preloads)
    return result


def steady_allocator(requested: str) -> str:
    """The allocator of the steady-state run: `requested`, or for "auto" tcmalloc when it is installed and
    tuned glibc (with a note saying what that costs) when it is not."""
    if requested != "auto":
        return requested
    if find_tcmalloc() is not None:
        return "tcmalloc"
    print(f"note: tcmalloc not found (package {TCMALLOC_PACKAGE}; scripts/setup_env.sh installs it as root), "
          f"so the steady-state run uses glibc with {' '.join(f'{k}={v}' for k, v in GLIBC_TUNED.items())}, "
          f"which still page-faults large tensors in again on some steps (see bench/README.md)", file=sys.stderr)
    return "glibc-tuned"


def running_allocator() -> str:
    """What this process runs with: tcmalloc when it is mapped in, else what the environment variables say
    (DEFAULT, "glibc-tuned", "thp", or "custom" for any other mix)."""
    try:
        if "/libtcmalloc" in Path("/proc/self/maps").read_text():
            return "tcmalloc"
    except OSError:
        pass
    glibc_tuned = all(os.environ.get(k) == v for k, v in GLIBC_TUNED.items())
    thp = all(os.environ.get(k) == v for k, v in TORCH_THP.items())
    others = [k for k in ALLOCATOR_VARIABLES if k in os.environ and not (glibc_tuned and k in GLIBC_TUNED)
              and not (thp and k in TORCH_THP)]
    if others or (glibc_tuned and thp):
        return "custom"
    return "glibc-tuned" if glibc_tuned else "thp" if thp else DEFAULT


def allocator_settings() -> str:
    """This process's allocator settings as one would type them before the command."""
    settings = [f"LD_PRELOAD={entry}" for entry in _preloads(os.environ) if _is_tcmalloc(entry)]
    settings += [f"{k}={os.environ[k]}" for k in ALLOCATOR_VARIABLES if k in os.environ]
    return " ".join(settings) or "glibc defaults"
