"""Whether an op may read a tensor's values on its hot path.

Only a real CPU tensor outside any tracing can be read for free: a CUDA read waits for the device
(and breaks CUDA-graph capture), and meta and fake tensors (torch.compile, torch.export,
FakeTensorMode, make_fx) have no values at all. Value checks and value-dependent shortcuts run
only where this says yes; elsewhere the kernels do without them (a device-side assert on CUDA).
"""

import torch


def values_are_readable(tensor: torch.Tensor) -> bool:
    """True for a plain CPU tensor outside torch.compile, proxy tracing and fake-tensor modes."""
    if tensor.device.type != "cpu" or type(tensor) is not torch.Tensor or torch.compiler.is_compiling():
        return False
    modes = torch._C._TorchDispatchModeKey
    return all(torch._C._get_dispatch_mode(key) is None for key in (modes.PROXY, modes.FAKE, modes.FUNCTIONAL))
