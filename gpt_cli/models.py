"""How the commands load a model: a training run or checkpoint, a save_pretrained directory, or GPT-2 (Hugging Face)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gpt_common.checkpoint import CONFIG_FILE
from gpt_common.config import as_config

__all__ = ["load_model", "is_training_checkpoint"]


def is_training_checkpoint(path: str) -> bool:
    """A directory without config.json: a training run (latest.json) or one of its checkpoints."""
    return Path(path).is_dir() and not (Path(path) / CONFIG_FILE).is_file()


def load_model(path: str, impl: str, device: str = "cpu", dtype: str = "float32"):
    """(model in eval mode, its config) from a save_pretrained / GPT-2 directory or a training checkpoint."""
    directory = Path(path)
    if not directory.is_dir():
        raise ValueError(f"--model {path}: no such directory")
    if impl == "numpy" and device != "cpu":
        raise ValueError(f"--device {device!r}: the NumPy implementation runs on the CPU only")
    if (directory / CONFIG_FILE).is_file():
        if impl == "torch":
            import torch

            import torch_gpt

            model = torch_gpt.load_pretrained(directory, dtype=getattr(torch, dtype), device=device)
        else:
            import numpy_gpt

            model = numpy_gpt.load_pretrained(directory, dtype=np.dtype(dtype))
        return model.eval(), model.cfg
    from gpt_common.training.train_state import load_train_checkpoint

    checkpoint = load_train_checkpoint(directory)
    cfg = as_config(checkpoint.manifest["config"])
    tensors = {key: value.astype(dtype) for key, value in checkpoint.model.items()}
    return _from_tensors(impl, cfg, tensors, device).eval(), cfg


def _from_tensors(impl: str, cfg, tensors: dict, device: str):
    """A model of ``cfg`` holding a training checkpoint's weights (strict: every key, every shape)."""
    if impl == "numpy":
        import numpy_gpt

        model = numpy_gpt.GPTModel(cfg, seed=0, dtype=next(iter(tensors.values())).dtype)
        model.load_state_dict(tensors)
        return model
    import torch

    import torch_gpt

    with torch.random.fork_rng(devices=[]):  # the model's random init is replaced at once: leave torch's RNG alone
        model = torch_gpt.GPTModel(cfg).to(torch.from_numpy(next(iter(tensors.values()))).dtype)
    model.load_state_dict({key: torch.from_numpy(value) for key, value in tensors.items()}, strict=True)
    return model.to(device)


