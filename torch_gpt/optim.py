"""AdamW and gradient clipping: torch's own (``torch.optim.AdamW``, ``torch.nn.utils``'s norm and clipping).

The twin of ``numpy_gpt/optim.py``, which writes the same update out by hand.
Build the optimizer from ``model.named_parameters()`` (or the groups of
``gpt_common.training.param_groups.decay_groups``) so its state can be checkpointed by
parameter name and resumed in either package. ``clip_grad_norm_`` first checks ``max_norm``
the way the NumPy twin does, with the same message.
"""

import torch
from torch.nn.utils import get_total_norm
from torch.optim import AdamW

from gpt_common.training.param_groups import check_max_norm

__all__ = ["AdamW", "clip_grad_norm_", "get_total_norm"]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach: bool | None = None) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` for a ``max_norm`` that is a finite number > 0 (else ValueError)."""
    check_max_norm(max_norm)
    return torch.nn.utils.clip_grad_norm_(parameters, float(max_norm), norm_type, error_if_nonfinite, foreach)
