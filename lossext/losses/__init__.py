"""The row losses: one module per layer, the same four layers as lossext.activations.

    functional  the public functions (fused kernels, or the reference as fallback)
    reference   pure-PyTorch references, written from the formulas
    modules     nn.Module wrappers (lossext.nn) and parameter_norm
    autograd    explicit torch.autograd.Function classes (lossext.autograd)
    ops         the op names, fake kernels, autograd formulas and gradient modes of torch.ops.lossext

The public names are re-exported by lossext, lossext.functional, lossext.nn,
lossext.reference and lossext.autograd.
"""
