"""The SWA authors' BN re-estimation (``bn_update``) in plain PyTorch: the reference the engine's BN tests compare with."""

from __future__ import annotations

import torch
import torch.nn as nn


def authors_bn_update(model: nn.Module, batches, weighting: str = "samples") -> nn.Module:
    """Reset every BN, then training-mode passes with momentum ``b / (n + b)`` for a batch of ``b`` after
    ``n`` samples (``weighting="batches"``: ``1 / (k + 1)``, `update_bn`'s average); returns the model in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
    model.train()
    n = 0
    with torch.no_grad():
        for k, x in enumerate(batches):
            for m in bns:
                m.momentum = x.size(0) / (n + x.size(0)) if weighting == "samples" else 1.0 / (k + 1)
            model(x)
            n += x.size(0)
    return model.eval()
