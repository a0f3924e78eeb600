"""Fused heads: a linear layer and a row loss in one op, without the (N, V) logits.

    linear  linear_cross_entropy (a drop-in for torch.nn.functional.linear_cross_entropy), linear_loss (every
            lossext loss), linear_evaluate, their references, the modules LinearCrossEntropyLoss and LinearLoss,
            and the fake kernels and autograd formulas of torch.ops.lossext.<loss>_linear_forward/_backward
"""
