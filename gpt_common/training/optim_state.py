"""AdamW's state in the shared checkpoint key space, so a NumPy run resumes in torch and the other way round.

Both packages' optimizers produce torch's ``state_dict()`` layout, ``{"state":
{index: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [{..., "params":
[index, ...], "param_names": [...]}]}``. Indices depend on the order the
parameters were given in; names do not. So the moments are stored under
``exp_avg.<parameter name>`` / ``exp_avg_sq.<parameter name>`` as arrays, and the
rest (step counts, group settings, names) as JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

__all__ = ["MOMENTS", "GROUP_SETTINGS", "optimizer_to_tensors", "optimizer_from_tensors"]

MOMENTS = ("exp_avg", "exp_avg_sq")
# The settings both AdamWs share; not lr, whose one source is the run's schedule (set at every step).
GROUP_SETTINGS = ("betas", "eps", "weight_decay")


def _names(state_dict: Mapping) -> dict[int, str]:
    names = {}
    for group in state_dict["param_groups"]:
        if "param_names" not in group or any(name is None for name in group["param_names"]):
            raise ValueError("the optimizer must be built from model.named_parameters() to be checkpointed by name")
        names.update(zip(group["params"], group["param_names"]))
    return names


def optimizer_to_tensors(state_dict: Mapping, to_numpy: Callable) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays keyed ``<moment>.<name>``, JSON-ready {"steps": {name: step}, "param_groups": [settings + names]})."""
    names = _names(state_dict)
    tensors, steps = {}, {}
    for index, value in state_dict["state"].items():
        for moment in MOMENTS:
            tensors[f"{moment}.{names[index]}"] = to_numpy(value[moment])
        steps[names[index]] = int(float(value["step"]))
    groups = [{**{key: _plain(group[key]) for key in GROUP_SETTINGS}, "param_names": list(group["param_names"])}
              for group in state_dict["param_groups"]]
    return tensors, {"steps": steps, "param_groups": groups}


def optimizer_from_tensors(template: Mapping, tensors: Mapping[str, np.ndarray], meta: Mapping,
                           from_numpy: Callable, step_value: Callable) -> dict:
    """A state_dict for ``template``'s optimizer (its own ``state_dict()``) from what ``optimizer_to_tensors`` wrote.

    Refused (ValueError) when the groups hold other parameters than the saved ones.
    """
    names = _names(template)
    _check_meta(meta)
    saved_groups = [list(group["param_names"]) for group in meta["param_groups"]]
    own_groups = [list(group["param_names"]) for group in template["param_groups"]]
    if saved_groups != own_groups:
        raise ValueError(f"optimizer state was saved for parameter groups {saved_groups}, "
                         f"this optimizer has {own_groups}")
    state = {}
    for index, name in names.items():
        if name in meta["steps"]:
            state[index] = {"step": step_value(meta["steps"][name]),
                            **{moment: from_numpy(_moment(tensors, moment, name)) for moment in MOMENTS}}
    groups = [{**group, **{key: (tuple(saved[key]) if key == "betas" else saved[key]) for key in GROUP_SETTINGS}}
              for group, saved in zip(template["param_groups"], meta["param_groups"])]
    return {"state": state, "param_groups": groups}


def _check_meta(meta: Mapping) -> None:
    """The JSON half has step counts by name and one settings object per group, each with every setting."""
    if not isinstance(meta, Mapping) or not isinstance(meta.get("steps"), Mapping) or not isinstance(
            meta.get("param_groups"), list):
        raise ValueError("optimizer state must have 'steps' (an object) and 'param_groups' (a list)")
    for group in meta["param_groups"]:
        keys = group if isinstance(group, Mapping) else {}
        missing = [key for key in (*GROUP_SETTINGS, "param_names") if key not in keys]
        if missing:
            raise ValueError(f"optimizer state: a parameter group has no {missing}")


def _moment(tensors: Mapping, moment: str, name: str):
    key = f"{moment}.{name}"
    if key not in tensors:
        raise ValueError(f"optimizer state has a step count for {name!r} but no {key!r} tensor")
    return tensors[key]


def _plain(value):
    """A JSON-ready copy of a group setting (torch may hold a 0-d tensor for lr or betas)."""
    if isinstance(value, tuple | list):
        return [float(v) for v in value]
    return float(value)
