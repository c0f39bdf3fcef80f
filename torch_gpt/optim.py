"""AdamW and gradient clipping: torch's own (``torch.optim.AdamW``, ``torch.nn.utils``'s norm and clipping).

The twin of ``numpy_gpt/optim.py``, which writes the same update out by hand.
Build the optimizer from ``model.named_parameters()`` (or the groups of
``gpt_common.training.param_groups.decay_groups``) so its state can be checkpointed by
parameter name and resumed in either package. ``clip_grad_norm_`` first checks ``max_norm``
the way the NumPy twin does, with the same message. ``fastest_path(device)`` gives the
keyword of torch's fastest AdamW for a device: ``fused=True`` (one kernel over all
parameters instead of a loop of per-tensor ``div`` and ``sqrt`` calls; the same update).
"""

import torch
from torch.nn.utils import get_total_norm
from torch.optim import AdamW

from gpt_common.training.param_groups import check_max_norm

__all__ = ["AdamW", "clip_grad_norm_", "fastest_path", "get_total_norm"]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach: bool | None = None) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` for a ``max_norm`` that is a finite number > 0 (else ValueError)."""
    check_max_norm(max_norm)
    return torch.nn.utils.clip_grad_norm_(parameters, float(max_norm), norm_type, error_if_nonfinite, foreach)


def fastest_path(device: torch.device | str) -> dict:
    """``{"fused": True}`` where torch has a fused AdamW for ``device`` (CPU and CUDA do), else
    ``{"foreach": True}`` (one multi-tensor call per step of the update)."""
    try:  # torch lists the devices with fused optimizer kernels here (a private helper, so guarded)
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
        supported = _get_fused_kernels_supported_devices()
    except ImportError:
        supported = ["cuda"]
    return {"fused": True} if torch.device(device).type in supported else {"foreach": True}
