"""AdamW and gradient clipping: torch's own (``torch.optim.AdamW``, ``torch.nn.utils.clip_grad_norm_``).

The twin of ``numpy_gpt/optim.py``, which writes the same update out by hand.
Build the optimizer from ``model.named_parameters()`` (or the groups of
``gpt_common.param_groups.decay_groups``) so its state can be checkpointed by
parameter name and resumed in either package. ``fastest_path(device)`` gives the
keyword of torch's fastest AdamW for a device: ``fused=True`` (one kernel over all
parameters instead of a loop of per-tensor ``div`` and ``sqrt`` calls; the same update).
"""

import torch
from torch.nn.utils import clip_grad_norm_
from torch.optim import AdamW

__all__ = ["AdamW", "clip_grad_norm_", "fastest_path"]


def fastest_path(device: torch.device | str) -> dict:
    """``{"fused": True}`` where torch has a fused AdamW for ``device`` (CPU and CUDA do), else
    ``{"foreach": True}`` (one multi-tensor call per step of the update)."""
    try:  # torch lists the devices with fused optimizer kernels here (a private helper, so guarded)
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
        supported = _get_fused_kernels_supported_devices()
    except ImportError:
        supported = ["cuda"]
    return {"fused": True} if torch.device(device).type in supported else {"foreach": True}
