"""AdamW and gradient clipping: torch's own (``torch.optim.AdamW``, ``torch.nn.utils.clip_grad_norm_``).

The twin of ``numpy_gpt/optim.py``, which writes the same update out by hand.
Build the optimizer from ``model.named_parameters()`` (or the groups of
``gpt_common.training.param_groups.decay_groups``) so its state can be checkpointed by
parameter name and resumed in either package.
"""

from torch.nn.utils import clip_grad_norm_
from torch.optim import AdamW

__all__ = ["AdamW", "clip_grad_norm_"]
