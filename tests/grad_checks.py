"""Helpers for the backward tests: NumPy's hand-written gradients, torch autograd's, finite differences,
and the magnitudes of the terms each parameter gradient sums (what its float32 budget scales with)."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from gpt_common.tolerances import (
    FD_STEP,
    assert_directional_derivative,
    assert_grad_norm_within_budget,
)
from numpy_gpt.activations import GELU
from numpy_gpt.attention import (
    MultiHeadAttention,
    SelfAttention,
    SimplifiedSelfAttention,
    SoftmaxSaved,
    scaled_attention_weights,
)
from numpy_gpt.layer_norm import LayerNorm
from numpy_gpt.layers import Dropout, Embedding, Linear
from tests.twins import SharedMasks


def numpy_backward(module, x, dout, **kwargs):
    """(output, dx, grads) from one forward that keeps activations and one backward; the module keeps nothing."""
    module.zero_grad()
    with module.keeping_activations():
        out = module(x, **kwargs)
    dx = module.backward(dout)
    grads = module.named_grads()
    module.zero_grad()
    return out, dx, grads


def torch_backward(torch_module, x, dout, **kwargs):
    """(output, dx, grads) by torch autograd for the same upstream gradient ``dout`` (dx None for integer input)."""
    params = dict(torch_module.named_parameters())
    floating = np.issubdtype(np.asarray(x).dtype, np.floating)
    x_t = torch.tensor(x, requires_grad=True) if floating else torch.from_numpy(np.asarray(x))
    out = torch_module(x_t, **kwargs)
    inputs = ([x_t] if floating else []) + list(params.values())
    grads = torch.autograd.grad(out, inputs, grad_outputs=torch.from_numpy(dout), allow_unused=True)
    grads = [torch.zeros_like(i) if g is None else g for i, g in zip(inputs, grads)]  # an unused bias: 0
    dx = grads.pop(0).numpy() if floating else None
    return out.detach().numpy(), dx, {k: g.numpy() for k, g in zip(params, grads)}


def fix_masks(module, seed: int) -> None:
    """Give every Dropout a fresh mask sequence from ``seed``: repeated forwards then draw the same masks."""
    for sub in module.modules():
        if hasattr(sub, "mask_fn"):
            sub.mask_fn = SharedMasks(seed)


class TermMagnitudes:
    """Wraps a float64 NumPy module's leaf backwards to record the sizes of the terms its gradients add up.

    Per parameter: |dy|^T |x| for a weight, sum |dy| for a bias or shift, sum |dy * x_hat| for a LayerNorm
    scale, the scatter of |dy| for an embedding (tied uses summed). Per leaf input: the sizes of the terms
    of its dx (|dy| |W| for a Linear; for LayerNorm (|g| + mean |g| + |x_hat| mean |g x_hat|) / std with
    g = dy * scale; |dy| (0.5 (1 + |t|) + 0.5 |x| (1 + t^2) |u'|) for GELU; |dy| / (1 - p) for dropout).
    """

    def __init__(self, module):
        self.magnitudes: dict[str, np.ndarray] = {}
        self.input_terms: list[tuple[tuple, np.ndarray]] = []  # (shape, sizes of the dx terms) per leaf call
        self.first_name = {}
        for key, value in module.named_parameters():
            self.first_name.setdefault(id(value), key)
        self.term_sizes: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id -> (array, sizes of its terms)
        self._norm_terms: dict[int, list[np.ndarray]] = {}  # LayerNorm -> the terms of each call's x_hat
        for _, leaf in module.named_modules():
            if isinstance(leaf, (Linear, LayerNorm, Embedding, GELU, Dropout, SimplifiedSelfAttention)):
                leaf.backward = self._wrap(leaf, leaf.backward)
            if isinstance(leaf, LayerNorm):
                leaf.forward = self._wrap_norm_forward(leaf, leaf.forward)
            elif hasattr(leaf, "backward"):
                leaf.backward = self._wrap_composite(leaf.backward)
            if isinstance(leaf, SelfAttention):
                leaf.attention_weights_backward = self._wrap_attention(leaf, leaf.attention_weights_backward)
                leaf.attention_backward = self._wrap_attention_backward(leaf.attention_backward)
            if isinstance(leaf, MultiHeadAttention):
                leaf.merge_heads = self._wrap_merge(leaf.merge_heads)
                leaf.split_heads = self._wrap_merge(leaf.split_heads)
                leaf.tiled_attention_backward = self._wrap_tiled_attention(leaf, leaf.tiled_attention_backward)
        self._pending_d_weights = None  # sizes of the terms of the weights' gradient, for the next softmax backward

    def size(self, array: np.ndarray) -> np.ndarray:
        """The sizes of the terms an upstream gradient was summed from (d_queries, d_keys inside attention
        cancel: softmax's backward subtracts a row's weighted mean), else its absolute value."""
        entry = self.term_sizes.get(id(array))
        return entry[1] if entry is not None and entry[0] is array else np.abs(array)

    def _wrap_attention(self, leaf, backward):
        def recording(d_weights, queries, keys, attn_weights):
            dropout = getattr(leaf, "dropout", None)
            if dropout is None:
                weights, d_abs = attn_weights, np.abs(d_weights)
            else:  # softmax's backward sees the weights before dropout and dW after it (at most 1 / (1 - p) larger)
                weights, d_abs = leaf._saved[SoftmaxSaved].attn_weights, np.abs(d_weights) / (1.0 - dropout.p)
            if self._pending_d_weights is not None and self._pending_d_weights.shape == d_weights.shape:
                d_abs = d_abs * 0.0 + self._pending_d_weights / (1.0 if dropout is None else 1.0 - dropout.p)
            d_queries, d_keys = backward(d_weights, queries, keys, attn_weights)
            self._record_score_terms(d_queries, d_keys, d_abs, weights, queries, keys)
            return d_queries, d_keys

        return recording

    def _record_score_terms(self, d_queries, d_keys, d_abs, weights, queries, keys) -> None:
        """dS = w (dW - sum dW w) has terms w (|dW| + sum |dW| w); dQ = dS K / sqrt(D), dK = dS^T Q / sqrt(D)."""
        d_scores = weights * (d_abs + (d_abs * weights).sum(-1, keepdims=True))
        scale = 1.0 / math.sqrt(keys.shape[-1])
        self.term_sizes[id(d_queries)] = (d_queries, scale * d_scores @ np.abs(keys))
        self.term_sizes[id(d_keys)] = (d_keys, scale * d_scores.swapaxes(-1, -2) @ np.abs(queries))

    def _wrap_attention_backward(self, attention_backward):
        def recording(d_context, queries, keys, values, attn_weights):
            d_context_size = self.size(d_context)
            self._pending_d_weights = d_context_size @ np.abs(values).swapaxes(-1, -2)  # terms of d_context V^T
            d_queries, d_keys, d_values = attention_backward(d_context, queries, keys, values, attn_weights)
            self._pending_d_weights = None
            self.term_sizes[id(d_values)] = (d_values, np.abs(attn_weights).swapaxes(-1, -2) @ d_context_size)
            return d_queries, d_keys, d_values

        return recording

    def _wrap_tiled_attention(self, leaf, tiled_backward):
        """The tiled path keeps no weights, so the causal weights are rebuilt here in float64 from Q and K: its
        gradients get the terms the full path's would (dropout is off on this path), whichever path ran."""
        def recording(d_context, tile_size, queries, keys, values, context_vec, lse):
            d_queries, d_keys, d_values = tiled_backward(d_context, tile_size, queries, keys, values, context_vec, lse)
            num_queries, num_keys = queries.shape[-2], keys.shape[-2]
            weights = scaled_attention_weights(queries, keys, leaf.mask[num_keys - num_queries : num_keys, :num_keys])
            d_context_size = self.size(d_context)
            d_abs = d_context_size @ np.abs(values).swapaxes(-1, -2)  # terms of dW = d_context V^T
            self._record_score_terms(d_queries, d_keys, d_abs, weights, queries, keys)
            self.term_sizes[id(d_values)] = (d_values, weights.swapaxes(-1, -2) @ d_context_size)
            return d_queries, d_keys, d_values

        return recording

    def _wrap_merge(self, merge_heads):
        def recording(x):
            merged = merge_heads(x)
            if id(x) in self.term_sizes:
                self.term_sizes[id(merged)] = (merged, merge_heads(self.size(x)))
            return merged

        return recording

    def input_magnitude(self, shape, dout) -> np.ndarray:
        """An upper bound on the terms of the gradient of an input of ``shape``: every leaf dx of that shape
        (a block's input reaches its gradient through LayerNorm and the residuals), plus |dout| for a residual."""
        total = np.abs(dout) if np.shape(dout) == tuple(shape) else np.zeros(shape)
        for leaf_shape, terms in self.input_terms:
            if leaf_shape == tuple(shape):
                total = total + terms
        return total

    def _add(self, leaf, name: str, magnitude: np.ndarray) -> None:
        key = self.first_name[id(getattr(leaf, name))]
        self.magnitudes[key] = self.magnitudes.get(key, 0.0) + magnitude

    def _record(self, leaf, dout, saved) -> None:
        rows = self.size(dout).reshape(-1, dout.shape[-1])  # (N, out)
        if isinstance(leaf, Linear):
            self._add(leaf, "weight", rows.T @ np.abs(saved[0]).reshape(-1, saved[0].shape[-1]))
            if leaf.bias is not None:
                self._add(leaf, "bias", rows.sum(axis=0))
            self.input_terms.append((saved[0].shape, self.size(dout) @ np.abs(leaf.weight)))
        elif isinstance(leaf, LayerNorm):
            x_hat, std = saved
            x_hat_terms = self._norm_terms[id(leaf)].pop()
            self._add(leaf, "scale", (self.size(dout) * x_hat_terms).reshape(rows.shape).sum(axis=0))
            self._add(leaf, "shift", rows.sum(axis=0))
            g = self.size(dout) * np.abs(leaf.scale)
            terms = g + g.mean(-1, keepdims=True) + x_hat_terms * (g * x_hat_terms).mean(-1, keepdims=True)
            self.input_terms.append((x_hat.shape, terms / std))
        elif isinstance(leaf, GELU):
            x = saved[0]
            t = np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))
            du = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x**2)
            gelu_terms = 0.5 * (1 + np.abs(t)) + 0.5 * np.abs(x) * (1 + t**2) * du
            self.input_terms.append((x.shape, self.size(dout) * gelu_terms))
        elif isinstance(leaf, SimplifiedSelfAttention):
            x, weights = np.abs(saved[0]), saved[1]
            d_abs = np.abs(dout) @ x.swapaxes(-1, -2)  # terms of dW = dy x^T
            d_scores = weights * (d_abs + (d_abs * weights).sum(-1, keepdims=True))
            self.input_terms.append((x.shape, weights.swapaxes(-1, -2) @ np.abs(dout) + d_scores @ x
                                     + d_scores.swapaxes(-1, -2) @ x))
        elif isinstance(leaf, Dropout):
            self.input_terms.append((dout.shape, self.size(dout) / (1.0 - leaf.p)))
        else:
            scatter = np.zeros(leaf.weight.shape)
            np.add.at(scatter, np.broadcast_to(saved[0], dout.shape[:-1]).reshape(-1), rows)
            self._add(leaf, "weight", scatter)

    def _wrap(self, leaf, backward):
        def recording(dout, *record):  # a dropout run twice is handed its run's record
            self._record(leaf, dout, record[0] if record else next(iter(leaf._saved.values()), None))
            dx = backward(dout, *record)
            if dx is not None and not isinstance(leaf, Embedding):
                self.term_sizes[id(dx)] = (dx, self.input_terms[-1][1])  # what the next step down sums
            return dx

        return recording

    def _wrap_norm_forward(self, leaf, forward):
        """x_hat = (x - mean) / std is itself a difference: its terms are (|x| + |mean|) / std (not |x_hat|,
        which is exactly 0 for a single feature while its rounded value is not)."""
        stack = self._norm_terms.setdefault(id(leaf), [])

        def recording(x):
            mean = x.mean(-1, keepdims=True)
            stack.append((np.abs(x) + np.abs(mean)) / np.sqrt(x.var(-1, keepdims=True) + leaf.eps))
            return forward(x)

        return recording

    def _wrap_composite(self, backward):
        """A composite's dx sums its leaves' dx (and, through residuals, dout): the sizes of all those terms."""
        def recording(dout, *record):
            first = len(self.input_terms)
            dx = backward(dout, *record)
            if dx is not None:
                sizes = self.size(dout) if dout.shape == dx.shape else np.zeros(dx.shape)
                for shape, terms in self.input_terms[first:]:
                    if shape == dx.shape:
                        sizes = sizes + terms
                self.term_sizes[id(dx)] = (dx, sizes)
            return dx

        return recording


def random_direction(arrays: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {key: rng.standard_normal(value.shape) for key, value in arrays.items()}


def unique_parameters(module) -> dict[str, np.ndarray]:
    """Parameters by first name, each array once (a tied head is one entry), like torch's named_parameters()."""
    seen, result = set(), {}
    for key, value in module.named_parameters():
        if id(value) not in seen:
            seen.add(id(value))
            result[key] = value
    return result


def directional_derivative(objective, params: dict[str, np.ndarray], direction: dict[str, np.ndarray],
                           step: float) -> tuple[float, float]:
    """d/dt f(p + t v) at 0 and a bound on its truncation error: central differences D at steps h, h/2, h/4,
    Richardson-combined R(h) = (4 D(h/2) - D(h)) / 3 so the h^2 error term cancels; returns (R(h/2),
    |R(h) - R(h/2)|) (see ``fd_budget``). The parameter arrays are moved in place and restored exactly."""
    originals = {key: value.copy() for key, value in params.items()}

    def at(t: float) -> float:
        for key, value in params.items():
            np.copyto(value, originals[key] + t * direction[key])
        return objective()

    try:
        central = [(at(h) - at(-h)) / (2.0 * h) for h in (step, step / 2.0, step / 4.0)]
    finally:
        for key, value in params.items():
            np.copyto(value, originals[key])
    coarse, fine = ((4.0 * central[i + 1] - central[i]) / 3.0 for i in (0, 1))
    return fine, abs(coarse - fine)


def dot(grads: dict, direction: dict) -> tuple[float, float]:
    """(sum_k <g_k, v_k>, sum_k <|g_k|, |v_k|>): the predicted derivative and the size of its terms."""
    value = sum(float(np.sum(grads[key] * direction[key])) for key in direction)
    size = sum(float(np.sum(np.abs(grads[key] * direction[key]))) for key in direction)
    return value, size


def float64_copy(module):
    """The same module with its (already rounded) weights in float64: the reference the budgets are measured on."""
    return copy.deepcopy(module).to(np.float64)


def check_against_torch(np_module, torch_module, x, dout, *, mask_seed=None, **kwargs):
    """NumPy's output, dx and every parameter gradient equal torch autograd's, to the backward budgets."""
    dtype = np.asarray(dout).dtype
    reference = float64_copy(np_module)
    for module in (np_module, torch_module, reference):
        if mask_seed is not None:
            fix_masks(module, mask_seed)
    out, dx, grads = numpy_backward(np_module, x, dout, **kwargs)
    out_t, dx_t, grads_t = torch_backward(torch_module, x, dout, **kwargs)
    magnitudes = TermMagnitudes(reference)
    x64 = x.astype(np.float64) if np.issubdtype(np.asarray(x).dtype, np.floating) else x
    numpy_backward(reference, x64, dout.astype(np.float64), **kwargs)
    assert set(grads) == set(grads_t) == set(magnitudes.magnitudes)
    steps = 2 * len(list(np_module.modules()))  # forward and backward through every module, at most
    positions = int(np.prod(dout.shape[:-1]))
    for key, grad in grads.items():
        assert grad.dtype == dtype, key
        assert_grad_norm_within_budget(grad, grads_t[key], magnitudes.magnitudes[key], positions, steps, dtype,
                                       name=key)
    if dx_t is not None:
        assert dx.dtype == dtype
        terms = max(x.shape[-1], dout.shape[-1], x.shape[-2])  # the longest sum behind an input gradient
        dx_magnitude = magnitudes.input_magnitude(x.shape, dout)
        assert_grad_norm_within_budget(dx, dx_t, dx_magnitude, terms, steps, dtype, name="input")
        return out, dx, grads, dx_magnitude
    return out, dx, grads, None


def check_finite_differences(module, x, dout, seed: int, *, mask_seed=None, **kwargs):
    """float64: the derivative of sum(dout * module(x)) along a random direction of (x, parameters), by central
    differences, equals <gradient, direction> from the hand-written backward."""
    x = np.array(x)  # our own copy, moved in place with the parameters
    floating = np.issubdtype(x.dtype, np.floating)
    arrays = {**unique_parameters(module), **({"<input>": x} if floating else {})}
    direction = random_direction(arrays, seed)

    def objective():
        if mask_seed is not None:
            fix_masks(module, mask_seed)  # the same masks at every evaluation
        return float(np.sum(dout * module(x, **kwargs)))

    if mask_seed is not None:
        fix_masks(module, mask_seed)
    out, dx, grads = numpy_backward(module, x, dout, **kwargs)
    grads = {**grads, **({"<input>": dx} if floating else {})}
    finite_difference, truncation = directional_derivative(objective, arrays, direction, FD_STEP)
    predicted, size = dot(grads, direction)
    objective_terms = float(np.sum(np.abs(dout * out)))  # f = sum dout * out
    assert_directional_derivative(finite_difference, predicted, size, objective_terms, truncation)
