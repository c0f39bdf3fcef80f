"""AdamW and clip_grad_norm_: the NumPy step, written out, against torch.optim.AdamW and torch's clipping;
parameter groups (the book's and nanoGPT's), state_dict round trips, the shared checkpoint key space, the
in-place step's memory, and bad arguments."""

import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from gpt_common.tolerances import adamw_budget, assert_within_budget
from gpt_common.training.optim_state import optimizer_from_tensors, optimizer_to_tensors
from gpt_common.training.param_groups import decay_groups
from numpy_gpt import optim as np_optim
from tests.strategies import DTYPES, seeds
from tests.twins import torch_dtype
from torch_gpt import optim as torch_optim

SHAPES = [(3, 5), (7,), (2, 3, 4), (1,)]


def named_arrays(seed, dtype, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return {f"p{i}": rng.standard_normal(shape).astype(dtype) for i, shape in enumerate(shapes)}


def gradient_stream(seed, arrays, steps):
    rng = np.random.default_rng(seed + 1)
    return [{k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in arrays.items()} for _ in range(steps)]


def run_numpy(arrays, grads, **kwargs):
    params = {k: v.copy() for k, v in arrays.items()}
    opt = np_optim.AdamW(list(params.items()), **kwargs)
    history, updates = [], []
    for g in grads:
        before = {k: v.copy() for k, v in params.items()}
        opt.step(g)
        history.append(before)
        updates.append({k: params[k] - before[k] for k in params})
    return params, history, updates, opt


def run_torch(arrays, grads, **kwargs):
    params = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in arrays.items()}
    opt = torch_optim.AdamW(list(params.items()), **kwargs)
    for g in grads:
        for k, p in params.items():
            p.grad = torch.from_numpy(g[k])
        opt.step()
    return {k: p.detach().numpy() for k, p in params.items()}, opt


HYPER = st.fixed_dictionaries({
    "lr": st.sampled_from([1e-3, 4e-4, 0.1]),
    "weight_decay": st.sampled_from([0.0, 0.1, 0.01]),
    "betas": st.sampled_from([(0.9, 0.999), (0.9, 0.95), (0.5, 0.6)]),
    "eps": st.sampled_from([1e-8, 1e-6]),
})


@settings(max_examples=30)
@given(seeds, DTYPES, HYPER, st.integers(1, 6))
def test_adamw_matches_torch(seed, dtype, hyper, steps):
    arrays = named_arrays(seed, dtype)
    grads = gradient_stream(seed, arrays, steps)
    ours, _, _, _ = run_numpy(arrays, grads, **hyper)
    theirs, _ = run_torch(arrays, grads, **hyper)
    _, history, updates, _ = run_numpy({k: v.astype(np.float64) for k, v in arrays.items()},
                                       [{k: v.astype(np.float64) for k, v in g.items()} for g in grads], **hyper)
    for key in arrays:
        assert ours[key].dtype == dtype
        budget = adamw_budget([h[key] for h in history], [u[key] for u in updates])
        assert_within_budget(ours[key], theirs[key], budget, dtype)


def test_adamw_first_step_is_lr_times_sign():
    """With bias correction, step 1 moves each weight by lr * g / (|g| + eps) (plus decay): the textbook check."""
    p = np.array([1.0, -2.0, 3.0])
    opt = np_optim.AdamW([("w", p)], lr=0.1, weight_decay=0.0, eps=0.0)
    opt.step({"w": np.array([0.5, -4.0, 1e-3])})
    np.testing.assert_allclose(p, [0.9, -1.9, 2.9], rtol=0, atol=1e-15)


@pytest.mark.parametrize("threads", [1, 3])
def test_adamw_steps_in_place_across_chunks(monkeypatch, threads):
    monkeypatch.setattr(np_optim, "CHUNK", 7)  # several chunks and a ragged last one in a 5x9 parameter
    arrays = named_arrays(3, np.float64, [(5, 9), (4,)])
    grads = gradient_stream(3, arrays, 3)
    params = {k: v.copy() for k, v in arrays.items()}
    ids = {k: id(v) for k, v in params.items()}
    opt = np_optim.AdamW(list(params.items()), lr=0.01, weight_decay=0.1, threads=threads)
    for g in grads:
        opt.step(g)
    theirs, _ = run_torch(arrays, grads, lr=0.01, weight_decay=0.1)
    assert {k: id(v) for k, v in params.items()} == ids  # the model's own arrays moved
    for key in params:
        np.testing.assert_allclose(params[key], theirs[key], rtol=1e-13, atol=1e-15)


def test_threads_give_bitwise_the_same_step(monkeypatch):
    monkeypatch.setattr(np_optim, "CHUNK", 5)
    arrays = named_arrays(4, np.float32, [(7, 11), (3,)])
    grads = gradient_stream(4, arrays, 4)
    results = []
    for threads in (1, 2, 4):
        params = {k: v.copy() for k, v in arrays.items()}
        opt = np_optim.AdamW(list(params.items()), lr=0.01, weight_decay=0.1, threads=threads)
        for g in grads:
            opt.step(g)
        results.append(params)
    assert all(np.array_equal(r[k], results[0][k]) for r in results[1:] for k in arrays)


def test_adamw_step_allocates_no_parameter_sized_temporaries():
    big = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)  # 4 MiB, 16 chunks
    opt = np_optim.AdamW([("w", big)], lr=1e-3)
    grad = {"w": np.ones_like(big)}
    opt.step(grad)  # the first step allocates the two moments (8 MiB): that is state, not a temporary
    tracemalloc.start()
    opt.step(grad)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < big.nbytes // 8, f"step allocated {peak} bytes at peak for a {big.nbytes}-byte parameter"


def test_tied_weight_is_one_parameter():
    model = numpy_gpt.GPTModel({"vocab_size": 7, "context_length": 4, "emb_dim": 4, "n_heads": 2, "n_layers": 1},
                               seed=0)
    model.out_head.weight = model.tok_emb.weight
    opt = np_optim.AdamW(model.named_parameters(), lr=0.1)
    names = opt.param_groups[0]["param_names"]
    assert "tok_emb.weight" in names and "out_head.weight" not in names
    assert len(names) == len({id(p) for p in model.parameters()})


@pytest.mark.parametrize("mode", ["all", "matrices"])
def test_decay_groups_match_torch(mode):
    cfg = {"vocab_size": 11, "context_length": 5, "emb_dim": 6, "n_heads": 2, "n_layers": 1, "qkv_bias": True}
    np_model = numpy_gpt.GPTModel(cfg, seed=1, dtype=np.float64)
    torch_model = torch_gpt.GPTModel(cfg).double()
    torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in np_model.state_dict().items()})
    np_opt = np_optim.AdamW(decay_groups(np_model.named_parameters(), 0.5, mode), lr=0.05)
    torch_opt = torch_optim.AdamW(decay_groups(torch_model.named_parameters(), 0.5, mode), lr=0.05)
    grads = {k: np.full(v.shape, 0.25) for k, v in np_model.named_parameters()}
    np_opt.step(grads)
    for name, p in torch_model.named_parameters():
        p.grad = torch.from_numpy(grads[name])
    torch_opt.step()
    for name, p in torch_model.named_parameters():
        np.testing.assert_allclose(np_model.state_dict()[name], p.detach().numpy(), rtol=1e-14, atol=1e-15)
    if mode == "matrices":
        decay = np_opt.param_groups[0]["param_names"]
        assert "final_norm.scale" in np_opt.param_groups[1]["param_names"] and "tok_emb.weight" in decay
        assert np_opt.param_groups[1]["weight_decay"] == 0.0


@given(seeds, DTYPES, st.sampled_from([0.01, 1.0, 1e3]))
def test_clip_grad_norm_matches_torch(seed, dtype, max_norm):
    grads = named_arrays(seed, dtype)
    params = [torch.nn.Parameter(torch.zeros(v.shape, dtype=torch_dtype(dtype))) for v in grads.values()]
    for p, g in zip(params, grads.values()):
        p.grad = torch.from_numpy(g.copy())
    originals = {k: v.astype(np.float64) for k, v in grads.items()}
    terms = np.sqrt(sum(float(np.sum(g**2)) for g in originals.values()))
    theirs = torch_optim.clip_grad_norm_(params, max_norm)
    ours = np_optim.clip_grad_norm_(grads, max_norm)
    assert ours.dtype == dtype
    count = sum(g.size for g in grads.values())
    # a sum of K squares (sqrt(K) u relative, probabilistically), two square roots, the coefficient's division
    assert_within_budget(ours, theirs.numpy(), (np.sqrt(count) + 4) * terms, dtype)
    coefficient = min(1.0, max_norm / terms)
    for g, p, g0 in zip(grads.values(), params, originals.values()):
        assert_within_budget(g, p.grad.numpy(), (np.sqrt(count) + 4) * coefficient * np.abs(g0), dtype)
    norm_after = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))
    assert norm_after <= max_norm * (1 + 1e-5) or max_norm >= terms


def test_state_dict_round_trip_continues_bitwise():
    arrays = named_arrays(5, np.float32)
    grads = gradient_stream(5, arrays, 6)
    straight, _, _, _ = run_numpy(arrays, grads, lr=0.01)
    first, _, _, opt = run_numpy(arrays, grads[:3], lr=0.01)
    saved = opt.state_dict()
    params = {k: v.copy() for k, v in first.items()}
    resumed = np_optim.AdamW(list(params.items()), lr=0.01)
    resumed.load_state_dict(saved)
    for g in grads[3:]:
        resumed.step(g)
    for key in arrays:
        assert np.array_equal(params[key], straight[key])


@pytest.mark.parametrize("direction", ["torch->numpy", "numpy->torch"])
def test_optimizer_state_crosses_packages(direction):
    """Saved by name in one package, loaded in the other: the continued run equals the other package's own."""
    arrays = named_arrays(9, np.float64)
    grads = gradient_stream(9, arrays, 5)
    np_params, _, _, np_opt = run_numpy(arrays, grads[:2], lr=0.02)
    torch_params, torch_opt = run_torch(arrays, grads[:2], lr=0.02)
    if direction == "torch->numpy":
        tensors, meta = optimizer_to_tensors(torch_opt.state_dict(), lambda t: t.numpy())
        params = {k: v.copy() for k, v in torch_params.items()}
        target = np_optim.AdamW(list(params.items()), lr=0.02)
        target.load_state_dict(optimizer_from_tensors(target.state_dict(), tensors, meta, np.array, int))
        for g in grads[2:]:
            target.step(g)
        reference, _ = run_torch(arrays, grads, lr=0.02)
    else:
        tensors, meta = optimizer_to_tensors(np_opt.state_dict(), np.array)
        params = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in np_params.items()}
        target = torch_optim.AdamW(list(params.items()), lr=0.02)
        target.load_state_dict(optimizer_from_tensors(
            target.state_dict(), tensors, meta, torch.from_numpy, lambda s: torch.tensor(float(s))))
        for g in grads[2:]:
            for k, p in params.items():
                p.grad = torch.from_numpy(g[k])
            target.step()
        params = {k: p.detach().numpy() for k, p in params.items()}
        reference, _, _, _ = run_numpy(arrays, grads, lr=0.02)
    for key in arrays:
        np.testing.assert_allclose(params[key], reference[key], rtol=1e-13, atol=1e-15)


def test_optimizer_state_with_a_gap_is_refused_naming_it():
    """A moment missing from the file, or a group setting from the JSON: a ValueError naming it, not a KeyError."""
    arrays = named_arrays(3, np.float64)
    _, _, _, opt = run_numpy(arrays, gradient_stream(3, arrays, 1), lr=0.01)
    tensors, meta = optimizer_to_tensors(opt.state_dict(), np.array)
    del tensors["exp_avg_sq.p1"]
    with pytest.raises(ValueError, match="optimizer state has a step count for 'p1' but no 'exp_avg_sq.p1' tensor"):
        optimizer_from_tensors(opt.state_dict(), tensors, meta, np.array, int)
    del meta["param_groups"][0]["eps"]
    with pytest.raises(ValueError, match=r"optimizer state: a parameter group has no \['eps'\]"):
        optimizer_from_tensors(opt.state_dict(), tensors, meta, np.array, int)
    with pytest.raises(ValueError, match="optimizer state must have 'steps'"):
        optimizer_from_tensors(opt.state_dict(), tensors, {"param_groups": []}, np.array, int)


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -1.0}, "lr must be a finite number >= 0, got -1.0"), ({"lr": float("nan")}, "lr must be a finite"),
    ({"lr": True}, "lr must be a finite number >= 0, got True"), ({"lr": "1e-3"}, "lr must be a finite number"),
    ({"betas": (0.9, 1.0)}, r"betas must be two numbers in \[0, 1\), got \(0.9, 1.0\)"),
    ({"betas": (True, 0.9)}, "betas must be two numbers"), ({"betas": 0.9}, "betas must be two numbers"),
    ({"eps": -1.0}, "eps must be a finite number >= 0, got -1.0"), ({"eps": False}, "eps must be a finite number"),
    ({"weight_decay": -0.1}, "weight_decay must be a finite number >= 0, got -0.1"),
    ({"weight_decay": np.bool_(True)}, "weight_decay must be a finite number"),
])
def test_adamw_rejects_bad_settings(kwargs, message):
    """The README's number rule for every argument, and for the same argument as a group's override."""
    with pytest.raises(ValueError, match=message):
        np_optim.AdamW([("w", np.zeros(3))], **kwargs)
    with pytest.raises(ValueError, match=message):
        np_optim.AdamW([{"params": [("w", np.zeros(3))], **kwargs}])


def test_adamw_takes_numpy_scalars_as_python_floats():
    """np.float32(1e-3) is a number (the README's rule); stored as a Python float, so no float32 array upcasts."""
    opt = np_optim.AdamW([{"params": [("w", np.zeros(3, np.float32))], "lr": np.float64(0.5)}], lr=np.float32(1e-3),
                         betas=(np.float32(0.8), 0.9), eps=np.float64(1e-6), weight_decay=np.int64(0))
    assert opt.defaults == {"lr": float(np.float32(1e-3)), "betas": (float(np.float32(0.8)), 0.9), "eps": 1e-6,
                            "weight_decay": 0.0}
    assert type(opt.param_groups[0]["lr"]) is float and opt.param_groups[0]["lr"] == 0.5


def test_adamw_step_refuses_gradients_that_name_no_parameter():
    w = np.zeros(3)
    opt = np_optim.AdamW([("w", w)], lr=0.1)
    with pytest.raises(ValueError, match=r"step\(grads\) got gradients for \['v'\], which name no parameter"):
        opt.step({"v": np.ones(3)})
    assert not w.any() and opt.state == {}


@pytest.mark.parametrize("max_norm", [-1.0, 0.0, float("nan"), float("inf"), True, "1"])
def test_clip_grad_norm_refuses_a_bad_max_norm_in_both_packages(max_norm):
    """A negative bound would reverse every gradient, 0 zero them, NaN poison them: one message in both."""
    grads = {"w": np.ones(3)}
    param = torch.nn.Parameter(torch.zeros(3))
    param.grad = torch.ones(3)
    messages = []
    for call in (lambda: np_optim.clip_grad_norm_(grads, max_norm), lambda: torch_optim.clip_grad_norm_([param],
                                                                                                     max_norm)):
        with pytest.raises(ValueError) as info:
            call()
        messages.append(str(info.value))
    assert messages == [f"max_norm must be a finite number > 0, got {max_norm!r}"] * 2
    assert (grads["w"] == 1).all() and (param.grad == 1).all()


@given(seeds, DTYPES)
def test_get_total_norm_matches_torch(seed, dtype):
    grads = named_arrays(seed, dtype)
    theirs = torch_optim.get_total_norm([torch.from_numpy(g) for g in grads.values()])
    ours = np_optim.get_total_norm(grads)
    terms = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))
    count = sum(g.size for g in grads.values())
    assert ours.dtype == dtype
    assert_within_budget(ours, theirs.numpy(), (np.sqrt(count) + 4) * terms, dtype)  # as for clipping


def test_adamw_rejects_mismatched_gradients():
    opt = np_optim.AdamW([("w", np.zeros(3))])
    with pytest.raises(ValueError, match="shape"):
        opt.step({"w": np.zeros(4)})
    unnamed = np_optim.AdamW([np.zeros(3)])
    with pytest.raises(ValueError, match="named_parameters"):
        unnamed.step({"w": np.zeros(3)})
    with pytest.raises(ValueError, match="1 parameters"):
        unnamed.step([np.zeros(3), np.zeros(3)])
    with pytest.raises(ValueError, match="read-only"):
        frozen = np.zeros(3)
        frozen.flags.writeable = False
        np_optim.AdamW([frozen])
