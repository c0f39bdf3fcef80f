"""The project's one tolerance rule, from floating-point error analysis: the rounding budget.

Shipped code, so that everything that states a bound states the same one: the tests prove each
component against it, the reading site (``gpt_cli read``) prints it beside each measured difference,
and the benchmarks validate every timed entry with it. Framework-neutral: NumPy only, and the budget
walks read a NumPy module's weights by attribute name (duck typing), importing neither twin.

The rule
--------
A floating-point sum of K terms s = t_1 + ... + t_K, added in any order, carries an error
bounded by the size of its *terms*, not of its result (Higham, "Accuracy and Stability of
Numerical Algorithms", 2002, section 3.1):

    |fl(s) - s| <= gamma_K * sum |t_i|,         gamma_K = K u / (1 - K u)   (worst case)
    |fl(s) - s| <= LAMBDA * sqrt(K) * u * sum |t_i|                          (probabilistic)

where u is the unit roundoff (2^-24 for float32, 2^-53 for float64). The second form
(Higham & Mary, "A New Approach to Probabilistic Rounding Error Analysis", SIAM J. Sci.
Comput. 41(5), 2019, Theorem 2.4) models the rounding errors as independent and mean-zero,
and holds with probability at least 1 - 2 K exp(-LAMBDA^2 / 2).

A component is a chain of such sums (a projection, a softmax, a normalisation, ...), so its
error is the sum over its steps of each step's own rounding, carried forward to the output
by the steps after it (first order). In the same probabilistic model the errors of different
steps and of different terms are independent and mean-zero, so they combine in quadrature
(root-sum-square) and pass through a weight matrix W as sqrt(E^2 (W^2)^T), not E |W|^T: a
worst-case |W| propagation compounds by a factor of about sqrt(K) per layer and, after a few
layers, admits errors as large as a real bug. The *budget* functions below compute this, in
float64, alongside a float64 reference value of the same function of the same inputs:

    value, budget = mha_budget(module, x)          # budget in units of u, same shape as value
    |implementation - value| <= LAMBDA * u * budget     (each implementation, alone)
    |numpy - torch|          <= 2 * LAMBDA * u * budget (two implementations, each rounded)

A budget never looks at the result's own size: near-cancelling sums (an output of 0.04 in a
row that reaches 112) get the error their large terms allow. Where the softmax amplifies
rounding in the attention scores (scores in the hundreds, near-ties), the budget carries the
scores' error through the softmax's Jacobian, so it grows exactly where the arithmetic does.

The constant
------------
LAMBDA = 8: the probabilistic bound then fails for one output element with probability at most
2 K exp(-32) ~ 2.5e-14 K. The suite checks about 1e7 elements per run, so a correct
implementation fails once in more than 1e5 full runs even if every element sat at its
bound; in practice errors use a small fraction of it (BLAS blocked sums are more accurate
than a single running sum). A wrong formula, a wrong weight or swapped heads move
results by many orders of magnitude more (the suite's test_tolerances.py proves the rule catches them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# -------------------------------------------------------------------------------------------------
# The rule and its one constant.

LAMBDA = 8.0


def unit_roundoff(dtype) -> float:
    """u = eps / 2: the largest relative error of one correctly rounded operation (2^-24 for float32)."""
    return float(np.finfo(np.dtype(dtype)).eps) / 2.0


def bound(budget, dtype, *, both_rounded: bool = True) -> np.ndarray:
    """LAMBDA u budget (one rounded side against an exact reference), or twice that (two rounded sides).

    The smallest normal number is added so that a budget of exactly 0 still admits a result
    that underflowed differently (exp of a very negative score) on the two sides.
    """
    factor = 2.0 if both_rounded else 1.0
    return factor * LAMBDA * unit_roundoff(dtype) * np.asarray(budget, dtype=np.float64) + np.finfo(dtype).tiny


def assert_within_budget(actual, expected, budget, dtype, *, both_rounded: bool = True) -> None:
    """Element-wise |actual - expected| <= LAMBDA u budget (x2 when both sides were rounded in ``dtype``)."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"shapes differ: {actual.shape} vs {expected.shape}"
    same_inf = np.isinf(expected) & (actual == expected)
    diff = np.where(same_inf, 0.0, np.abs(actual - expected))
    limit = np.broadcast_to(bound(budget, dtype, both_rounded=both_rounded), diff.shape)
    bad = ~(diff <= limit)  # NaN counts as bad
    if bad.any():
        worst = np.unravel_index(np.argmax(np.where(bad, diff / limit, 0.0)), diff.shape)
        raise AssertionError(
            f"{int(bad.sum())} of {diff.size} elements outside the rounding budget; worst at {worst}: "
            f"actual {actual[worst]!r}, expected {expected[worst]!r}, "
            f"|diff| {diff[worst]:.3g} > bound {limit[worst]:.3g} "
            f"(budget {np.broadcast_to(budget, diff.shape)[worst]:.3g} u, dtype {np.dtype(dtype).name})"
        )


def assert_norm_within_budget(actual, expected, budget, dtype, *, both_rounded: bool = True) -> None:
    """The norm-wise form: ||actual - expected||_F <= LAMBDA u ||budget||_F (x2 when both sides were rounded)."""
    diff = np.linalg.norm(np.asarray(actual, dtype=np.float64) - np.asarray(expected, dtype=np.float64))
    budget = np.broadcast_to(np.asarray(budget, dtype=np.float64), np.shape(actual))
    limit = float(bound(np.linalg.norm(budget), dtype, both_rounded=both_rounded))
    assert diff <= limit, f"||diff|| {diff:.3g} > bound {limit:.3g} (||budget|| {np.linalg.norm(budget):.3g} u)"


def assert_matches_reference(reference, dtype, *outputs) -> None:
    """Each output (an implementation's result in ``dtype``) is within the budget of the float64 ``reference``.

    ``reference`` is the (value, budget) pair a budget function returns. A float64 implementation
    and the float64 reference are both rounded at the same u, so the bound doubles there; a float32
    result against a float64 reference is the only rounded side.
    """
    value, budget = reference
    for out in outputs:
        assert_within_budget(out, value, budget, dtype, both_rounded=np.dtype(dtype) == np.float64)


def budget_ratio(actual, expected, budget, dtype, *, both_rounded: bool = True) -> float:
    """max |actual - expected| / bound: the share of the budget used (below 1 passes); for reports."""
    diff = np.abs(np.asarray(actual, dtype=np.float64) - np.asarray(expected, dtype=np.float64))
    return float(np.max(diff / bound(budget, dtype, both_rounded=both_rounded)))


# -------------------------------------------------------------------------------------------------
# Budgets of the building blocks. Every function takes float64 values and their incoming budgets
# (in units of u) and returns (value, budget) of its output. Weights enter exactly: both sides
# hold the same numbers. "own" is the step's own rounding; the rest carries incoming budgets.


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _like(E, x) -> np.ndarray:
    """An incoming budget as an array of x's shape (0.0 stands for an exact input)."""
    return np.broadcast_to(_f64(E), np.shape(x))


def linear_budget(x, Ex, weight, bias=None):
    """y = x W^T + b. Own: sqrt(K + 1) (|x| |W|^T + |b|) for the K-term dot product and the bias add."""
    x, weight = _f64(x), _f64(weight)
    y = x @ weight.T
    terms = np.abs(x) @ np.abs(weight).T
    if bias is not None:
        y = y + _f64(bias)
        terms = terms + np.abs(_f64(bias))
    own = math.sqrt(weight.shape[1] + 1) * terms
    return y, _rss(_through(_like(Ex, x), weight.T), own)


_A = math.sqrt(2.0 / math.pi)


def gelu_budget(x, Ex):
    """y = 0.5 x (1 + tanh(a (x + 0.044715 x^3))), about ten roundings.

    The inner polynomial carries about 4 u (|x| + 0.045 |x|^3); tanh passes it on scaled by
    tanh' = 1 - t^2 and adds its own few ulps (4 |t| allowed); the outer 0.5 x (1 + t) multiplies
    by 0.5 |x| and rounds thrice. Incoming error passes with |GELU'(x)|.
    """
    x = _f64(x)
    inner = _A * (x + 0.044715 * x**3)
    t = np.tanh(inner)
    sech2 = 1.0 - t * t
    y = 0.5 * x * (1.0 + t)
    own_t = sech2 * 4.0 * _A * (np.abs(x) + 0.045 * np.abs(x) ** 3) + 4.0 * np.abs(t)
    own = 0.5 * np.abs(x) * (own_t + 2.0 * (1.0 + np.abs(t))) + 3.0 * np.abs(y)
    slope = np.abs(0.5 * (1.0 + t) + 0.5 * x * sech2 * _A * (1.0 + 3 * 0.044715 * x**2))
    return y, _rss(slope * _f64(Ex), own)


def layer_norm_budget(x, Ex, scale, shift, eps):
    """y = s (x - mu) / sigma + b, sigma = sqrt(var + eps), over the last axis of width C.

    d = x - mu carries Ex + E_mu + |d| (the mean: sqrt(C) mean|x| + mean Ex); the variance,
    a C-term mean of d^2, carries 2 mean(|d| E_d) + (sqrt(C) + 1) var; sigma's relative error is
    half the variance's plus one rounding; n = d / sigma adds both relative errors; then
    the scale and shift round twice more.
    """
    x, Ex, scale, shift = _f64(x), _like(Ex, x), _f64(scale), _f64(shift)
    width = x.shape[-1]
    mu = x.mean(-1, keepdims=True)
    d = x - mu
    var = (d * d).mean(-1, keepdims=True)
    sigma = np.sqrt(var + eps)
    n = d / sigma
    y = scale * n + shift
    E_mu = _rss(math.sqrt(width) * np.abs(x).mean(-1, keepdims=True), np.sqrt((Ex * Ex).sum(-1, keepdims=True)) / width)
    E_d = _rss(Ex, E_mu, d)
    E_var = _rss(2.0 * np.sqrt(((d * E_d) ** 2).sum(-1, keepdims=True)) / width, (math.sqrt(width) + 1.0) * var)
    rel_sigma = _rss(E_var / (2.0 * (var + eps)), 2.0)
    E_n = _rss(E_d / sigma, np.abs(n) * rel_sigma, n)
    return y, _rss(np.abs(scale) * E_n, 2.0 * np.abs(scale * n), 2.0 * shift, y)


def softmax_budget(z, Ez, axis: int = -1):
    """w = exp(z - max) / sum exp(z - max); -inf entries (masked) give w = 0 exactly, with no budget.

    exp turns an absolute error in z into a relative error of e: delta_i = Ez_i + |z_i - max| + 2
    (the incoming error, the rounding of the shift, exp's own); normalising subtracts the
    weighted mean of those and adds the K-term sum's sqrt(K) + 1. In quadrature:
    E_w = w sqrt(delta^2 + sum_k w_k^2 delta_k^2 + (sqrt(K) + 1)^2). The error of the max cancels.
    """
    z, Ez = _f64(z), _like(Ez, z)
    finite = np.isfinite(z)
    top = np.max(np.where(finite, z, -np.inf), axis=axis, keepdims=True)
    shifted = np.where(finite, z - top, -np.inf)
    e = np.exp(shifted)
    w = e / e.sum(axis=axis, keepdims=True)
    delta = np.where(finite, _rss(Ez, np.abs(np.where(finite, shifted, 0.0)) + 2.0), 0.0)
    mean_delta = np.sqrt(np.square(delta * np.sqrt(w)).sum(axis=axis, keepdims=True)) * np.sqrt(
        w.max(axis=axis, keepdims=True))  # sqrt(sum w^2 delta^2) <= this; w in [0, 1] never underflows here
    terms = finite.sum(axis=axis, keepdims=True)
    return w, w * _rss(delta, mean_delta, np.sqrt(terms) + 1.0)


def matmul_budget(a, Ea, b, Eb):
    """c = a @ b over K terms: sqrt(Ea^2 b^2 + a^2 Eb^2) carried, sqrt(K) |a| |b| own."""
    a, b = _f64(a), _f64(b)
    carried = _rss(_through(_like(Ea, a), b), _quadrature_matmul(a, _like(Eb, b)))
    return a @ b, _rss(carried, math.sqrt(a.shape[-1]) * (np.abs(a) @ np.abs(b)))


def scores_budget(queries, Eq, keys, Ek, scale: float = 1.0, mask=None):
    """z = (scale q) k^T, with ``mask`` (True = hidden) set to -inf. Scaling q rounds once more."""
    q, Eq = scale * _f64(queries), scale * _like(Eq, queries)
    Eq = _rss(Eq, q)
    z, Ez = matmul_budget(q, Eq, _f64(keys).swapaxes(-1, -2), _like(Ek, keys).swapaxes(-1, -2))
    if mask is not None:
        z = np.where(mask, -np.inf, z)
        Ez = np.where(mask, 0.0, Ez)
    return z, Ez


def sampling_budget(logits, temperature: float, kept):
    """softmax((logits - max) / temperature) over the ``kept`` tokens (top-k), in float64.

    The shift and the division round once each: 2 |z| of absolute error in z when the shift comes
    first (ours), (|logit| + |max|) / temperature when the division does (transformers' warpers divide,
    then softmax shifts), so the budget allows either order. Top-p after it only zeroes entries,
    which leaves the others' budgets as they are.
    """
    logits = _f64(logits)
    top = logits.max(-1, keepdims=True)
    z = np.where(kept, (logits - top) / temperature, -np.inf)
    either_order = 2.0 * np.abs(np.where(kept, z, 0.0)) + (np.abs(logits) + np.abs(top)) / temperature
    return softmax_budget(z, np.where(kept, either_order, 0.0))


def top_p_budget(probs, budget, top_p: float):
    """Top-p keeps a token when the mass ranked above it is below top_p. That mass is a cumulative sum of up to V
    probabilities (each within its budget), so a token whose mass above lies within that sum's rounding of
    top_p may be kept by one side and dropped by the other: its budget becomes its whole probability."""
    probs = _f64(probs)
    order = np.argsort(-probs, axis=-1, kind="stable")
    sorted_probs = np.take_along_axis(probs, order, -1)
    above = np.empty_like(probs)
    np.put_along_axis(above, order, np.cumsum(sorted_probs, -1) - sorted_probs, -1)
    unit = 2.0 * LAMBDA * unit_roundoff(np.float64)  # bound()'s factor for two rounded sides
    cumsum_error = unit * (probs.shape[-1] + np.sum(budget, -1, keepdims=True))
    borderline = np.abs(above - top_p) <= cumsum_error
    return np.where(borderline, np.maximum(budget, probs / unit), budget)


def dropout_budget(x, Ex, keep, p: float):
    """y = x * keep / (1 - p): two roundings on the kept values; the incoming error scales the same way."""
    x = _f64(x)
    factor = np.asarray(keep, dtype=np.float64) / (1.0 - p)
    y = x * factor
    return y, _rss(Ex, 2.0 * x) * factor


def _rss(*parts) -> np.ndarray:
    """Independent errors combine in quadrature: sqrt(sum of squares), scaled by the largest part so that
    budgets of tiny values (exp of a very negative score: 1e-190 in float64) do not square to zero."""
    parts = np.broadcast_arrays(*(np.abs(_f64(p)) for p in parts))
    top = np.maximum.reduce(parts)
    safe = np.where(top > 0, top, 1.0)
    return np.sqrt(sum(np.square(p / safe) for p in parts)) * top


def _quadrature_matmul(a, b) -> np.ndarray:
    """sqrt(a^2 @ b^2), with a scaled by its rows' and b by its columns' largest entry (no underflow)."""
    a, b = np.abs(_f64(a)), np.abs(_f64(b))
    row, col = a.max(axis=-1, keepdims=True), b.max(axis=-2, keepdims=True)
    a = a / np.where(row > 0, row, 1.0)
    b = b / np.where(col > 0, col, 1.0)
    return np.sqrt(np.square(a) @ np.square(b)) * row * col


def _through(E, weight_t) -> np.ndarray:
    """Independent input errors E carried through a linear map: sqrt(E^2 @ (W^T)^2)."""
    return _quadrature_matmul(E, weight_t)


def add_budget(a, Ea, b, Eb):
    """c = a + b: both budgets plus one rounding of the sum."""
    c = _f64(a) + _f64(b)
    return c, _rss(Ea, Eb, c)


def zero_budget(x):
    """An input held exactly (the same float numbers on both sides)."""
    x = _f64(x)
    return x, np.zeros_like(x)


# -------------------------------------------------------------------------------------------------
# Budgets of the project's modules, walking the NumPy module's own weights in its forward order.
# ``masks`` maps a Dropout module to the source of its keep-masks (a SharedMasks with the seed the
# test shared), so training-mode budgets see the very masks both sides drew.


class SharedMasks:
    """A seeded source of dropout keep-masks; two with the same seed hand out the same sequence of masks."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def __call__(self, shape: tuple, p: float) -> np.ndarray:
        return self.rng.random(shape) >= p


class Masks:
    """Per-Dropout mask sources for a budget walk: module by module, the same SharedMasks(seed) sequence that
    a test gave each Dropout's ``mask_fn`` on both sides."""

    def __init__(self, module=None, seed: int | None = None):
        self.sources = {}
        if module is not None and seed is not None:
            for m in module.modules():
                if hasattr(m, "mask_fn"):
                    self.sources[id(m)] = SharedMasks(seed)

    def apply(self, dropout, x, Ex):
        if not dropout.training or dropout.p == 0.0:
            return _f64(x), _f64(Ex)
        keep = self.sources[id(dropout)](tuple(np.shape(x)), dropout.p)
        return dropout_budget(x, Ex, keep, dropout.p)


NO_MASKS = Masks()


def linear_module_budget(linear, x, Ex):
    return linear_budget(x, Ex, linear.weight, linear.bias)


def layer_norm_module_budget(norm, x, Ex):
    return layer_norm_budget(x, Ex, norm.scale, norm.shift, norm.eps)


def feed_forward_budget(ff, x, Ex):
    """Linear(C, 4C) -> GELU -> Linear(4C, C)."""
    first, _, second = ff.layers
    h, Eh = linear_module_budget(first, x, Ex)
    g, Eg = gelu_budget(h, Eh)
    return linear_module_budget(second, g, Eg)


def attend_budget(queries, Eq, keys, Ek, values, Ev, scale, mask=None, dropout=None, masks=NO_MASKS):
    """context = Drop(softmax(scale q k^T, masked)) v: scores, softmax, dropout, weighted sum of values."""
    z, Ez = scores_budget(queries, Eq, keys, Ek, scale, mask)
    w, Ew = softmax_budget(z, Ez)
    if dropout is not None:
        w, Ew = masks.apply(dropout, w, Ew)
    return matmul_budget(w, Ew, values, Ev)


def attention_backward_budget(queries, keys, values, d_context, scale, mask=None):
    """Budgets of (dQ, dK, dV) for context = softmax(scale Q K^T, masked) V, with exact inputs and d_context.

    dV = W^T dO sums T terms |W| |dO|. dS = W * (dO V^T - rowsum(dO * O)) carries W's relative error,
    which is the scores' own (about sqrt(D) scale |q| |k| per entry, passed through exp), plus the rounding of
    the D-term and T-term sums; dQ = scale dS K and dK = scale dS^T Q add their own K-term sums.
    """
    q, k, v, dO = (_f64(a) for a in (queries, keys, values, d_context))
    w, Ew = softmax_budget(*scores_budget(q, 0.0, k, 0.0, scale, mask))
    rel_w = np.divide(Ew, w, out=np.zeros_like(w), where=w > 0)  # W's relative budget
    out = w @ v
    d_weights_terms = np.abs(dO) @ np.abs(v).swapaxes(-1, -2) + np.abs((dO * out).sum(-1, keepdims=True))
    d_scores_terms = w * d_weights_terms
    tokens, width = k.shape[-2], q.shape[-1]
    own = math.sqrt(width) + math.sqrt(tokens) + 2.0
    E_ds = d_scores_terms * _rss(rel_w, own)
    E_dq = scale * (E_ds @ np.abs(k) + math.sqrt(tokens) * (d_scores_terms @ np.abs(k)))
    root_t = math.sqrt(q.shape[-2])
    ds_t, w_t = E_ds.swapaxes(-1, -2), w.swapaxes(-1, -2)
    E_dk = scale * (ds_t @ np.abs(q) + root_t * (d_scores_terms.swapaxes(-1, -2) @ np.abs(q)))
    E_dv = (w * _rss(rel_w, 1.0)).swapaxes(-1, -2) @ np.abs(dO) + root_t * (w_t @ np.abs(dO))
    return E_dq, E_dk, E_dv


def simplified_attention_budget(x):
    """SimplifiedSelfAttention: softmax(x x^T) x, with exact inputs."""
    x, Ex = zero_budget(x)
    return attend_budget(x, Ex, x, Ex, x, Ex, 1.0)


def _qkv(att, x, Ex):
    return [linear_module_budget(getattr(att, name), x, Ex) for name in ("W_query", "W_key", "W_value")]


def self_attention_budget(att, x, Ex=None, masks=NO_MASKS):
    """SelfAttention and CausalAttention (single head, scale 1/sqrt(d_out), the causal mask and dropout if any)."""
    x, Ex = (x, Ex) if Ex is not None else zero_budget(x)
    (q, Eq), (k, Ek), (v, Ev) = _qkv(att, x, Ex)
    tokens = x.shape[-2]
    mask = att.mask[:tokens, :tokens] if hasattr(att, "mask") else None
    dropout = getattr(att, "dropout", None)
    return attend_budget(q, Eq, k, Ek, v, Ev, 1.0 / math.sqrt(k.shape[-1]), mask, dropout, masks)


def wrapper_budget(wrapper, x, masks=NO_MASKS):
    """MultiHeadAttentionWrapper: each CausalAttention head's budget, concatenated."""
    parts = [self_attention_budget(head, x, masks=masks) for head in wrapper.heads]
    return np.concatenate([p[0] for p in parts], axis=-1), np.concatenate([p[1] for p in parts], axis=-1)


def mha_budget(att, x, Ex=None, mask=None, masks=NO_MASKS):
    """MultiHeadAttention without a cache: split heads, attend (causal or ``mask``), merge, out_proj."""
    x, Ex = (x, Ex) if Ex is not None else zero_budget(x)
    batch, tokens, _ = x.shape
    heads = [(att.split_heads(v), att.split_heads(e)) for v, e in _qkv(att, x, Ex)]  # (B, H, T, D) each
    (q, Eq), (k, Ek), (v, Ev) = heads
    mask = att.mask[:tokens, :tokens] if mask is None else mask
    c, Ec = attend_budget(q, Eq, k, Ek, v, Ev, 1.0 / math.sqrt(att.head_dim), mask, att.dropout, masks)
    merge = lambda a: a.transpose(0, 2, 1, 3).reshape(batch, tokens, att.d_out)
    return linear_module_budget(att.out_proj, merge(c), merge(Ec))


def block_budget(block, x, Ex=None, mask=None, masks=NO_MASKS):
    """TransformerBlock: x + Drop(MHA(LN1(x))), then h + Drop(FFN(LN2(h)))."""
    x, Ex = (x, Ex) if Ex is not None else zero_budget(x)
    a, Ea = layer_norm_module_budget(block.norm1, x, Ex)
    a, Ea = mha_budget(block.att, a, Ea, mask, masks)
    a, Ea = masks.apply(block.drop_shortcut, a, Ea)
    h, Eh = add_budget(a, Ea, x, Ex)
    f, Ef = layer_norm_module_budget(block.norm2, h, Eh)
    f, Ef = feed_forward_budget(block.ff, f, Ef)
    f, Ef = masks.apply(block.drop_shortcut, f, Ef)
    return add_budget(f, Ef, h, Eh)


def model_budget(model, idx, attention_mask=None, masks=NO_MASKS):
    """GPTModel logits: exact embedding lookups, their sum, the blocks, the final norm, the head."""
    idx = np.asarray(idx)
    batch, tokens = idx.shape
    positions, mask = model.positions_and_mask(batch, tokens, 0, attention_mask)
    x, Ex = add_budget(model.tok_emb.weight[idx], 0.0, model.pos_emb.weight[positions], 0.0)
    x, Ex = masks.apply(model.drop_emb, x, Ex)
    for block in model.trf_blocks:
        x, Ex = block_budget(block, x, Ex, mask, masks)
    x, Ex = layer_norm_module_budget(model.final_norm, x, Ex)
    return linear_module_budget(model.out_head, x, Ex)


# -------------------------------------------------------------------------------------------------
# Tolerances that are not rounding budgets.


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


# Statistical checks on outputs (LayerNorm mean 0 / variance 1): not rounding but the eps=1e-5
# inside sqrt(var + eps), which shifts the variance by up to eps / var.
NORMALISED = Tolerance(rtol=1e-3, atol=1e-4)

# Greedy decoding compared across implementations assumes the best logit beats the second by
# more than rounding could move either; below this margin (far above any budget of the tiny
# test models' logits) a near-tie could flip and the comparison is skipped, not failed.
GREEDY_MARGIN = 1e-9

# Benchmarks validate every timed entry against the NumPy reference on 124M-sized outputs,
# where a per-element budget walk would cost more than the timing: there the check is
# norm-wise, max |out - ref| <= atol + rtol * max |ref| (a row-free scale, so cancellation in
# one element cannot trip it). fp32: sqrt(K) u LAMBDA with K ~ 3072 and a dozen layers is
# about 5e-5; bf16 keeps 8 mantissa bits (u = 2^-9) through every matmul.
BENCHMARK_NORMWISE = {"fp32": Tolerance(rtol=1e-4, atol=1e-5), "bf16": Tolerance(rtol=1e-1, atol=1e-2)}


def assert_close(actual, expected, tol: Tolerance) -> None:
    """Element-wise |actual - expected| <= atol + rtol |expected|; only for the non-rounding checks above."""
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=tol.rtol, atol=tol.atol)


# ---------------------------------------------------------------------------------------------------------------
# Backward budgets (issue 9). Appended as its own section so merges with the rest of this file stay easy.
#
# A gradient entry is a sum g = sum_i a_i b_i of K terms (dW = dy^T x over the N positions, db = sum dy, ...).
# Rounding the sum itself costs at most LAMBDA * sqrt(K) * u * sum_i |a_i b_i| (Higham & Mary 2019, probabilistic);
# the factors a_i, b_i arrive with the relative errors of the forward and backward steps that made them, at most
# GRAD_ROUNDINGS_PER_STEP * u per step on the path, which adds steps * GRAD_ROUNDINGS_PER_STEP * u * sum |a_i b_i|.
# So the budget, in units of u, is (sqrt(K) + GRAD_ROUNDINGS_PER_STEP * steps) * sum_i |a_i b_i|, where the
# magnitudes sum_i |a_i b_i| come from a float64 run (the tests' grad_checks.TermMagnitudes) and `steps` counts the
# modules between the loss and the gradient, both ways. Element-wise, so a gradient that cancels to ~0 (a key
# bias: softmax ignores a shift shared by a whole row of scores) is bounded by its terms, not by its value.
# ---------------------------------------------------------------------------------------------------------------

# Dependent roundings one backward step applies to an element (the GELU backward, the longest, has ~10;
# a Linear or LayerNorm backward 2 to 6), counted once per module on the path.
GRAD_ROUNDINGS_PER_STEP = 10


def grad_budget(magnitude, terms: int, steps: int) -> np.ndarray:
    """(sqrt(K) + GRAD_ROUNDINGS_PER_STEP * steps) * sum|terms|, in units of u (see the section comment)."""
    return (np.sqrt(terms) + GRAD_ROUNDINGS_PER_STEP * steps) * np.asarray(magnitude, dtype=np.float64)


def assert_grad_within_budget(actual, expected, magnitude, terms: int, steps: int, dtype, *, both_rounded=True,
                              name: str = "gradient"):
    """Element-wise |actual - expected| <= (2 or 1) * LAMBDA * u * grad_budget(...), with a readable report."""
    factor = (2.0 if both_rounded else 1.0) * LAMBDA * unit_roundoff(dtype)
    bound = factor * grad_budget(magnitude, terms, steps)
    error = np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64))
    worst = np.unravel_index(np.argmax(error - bound), error.shape) if error.size else ()
    assert np.all(error <= bound), f"{name}: error {error[worst]:.3g} > budget {bound[worst]:.3g} at {worst}"


def assert_grad_norm_within_budget(actual, expected, magnitude, terms: int, steps: int, dtype, *, both_rounded=True,
                                   name: str = "gradient"):
    """The Frobenius-norm form: ||actual - expected|| <= (2 or 1) * LAMBDA * u * ||grad_budget(...)||, for a whole
    gradient tensor that passed through many sums whose terms are only tracked at the last one (see the comment
    on ``grad_budget``); a single entry may cancel deeper down, the tensor's norm of terms does not."""
    factor = (2.0 if both_rounded else 1.0) * LAMBDA * unit_roundoff(dtype)
    error = np.linalg.norm(np.asarray(actual, np.float64) - np.asarray(expected, np.float64))
    bound = factor * np.linalg.norm(grad_budget(magnitude, terms, steps))
    assert error <= bound, f"{name}: error norm {error:.3g} > budget {bound:.3g}"


# Central differences D(h) along a random direction v in float64, combined by Richardson extrapolation,
# R(h) = (4 D(h/2) - D(h)) / 3, whose truncation error is ~ h^4 |f^(5)|. That is tiny for a smooth f, but not
# where a LayerNorm's variance is near eps: at emb_dim 2 with a row variance of 2.6e-4 (found by a fresh seed),
# R(1e-4) missed the exact derivative by 5e-6 of it. So the truncation is measured, not assumed: the value is
# R(h/2) and its truncation budget |R(h) - R(h/2)|, which is about 15 times R(h/2)'s own error (it falls 16-fold
# per halving of h). Rounding is the other half: each evaluation of f carries an error of up to
# ~GRAD_ROUNDINGS_PER_STEP * u * S (S = sum of |terms| of the objective, e.g. sum |dout * out|), and the
# combination divides the difference of two such errors by the smallest step h/4, so it adds up to 3 * u * S
# / (h/4) per rounding. That floor matters where the derivative is tiny against f itself (a softmax saturated
# by one large logit: sum |g v| ~ 5e-7 while f ~ 1). A wrong formula (a dropped term, a wrong sign) is off by a
# large fraction of sum |g v|, far above all three.
FD_STEP = 1e-4
FD_RTOL = 1e-6
FD_ROUNDING = 3.0 * LAMBDA * GRAD_ROUNDINGS_PER_STEP


def fd_budget(terms_size: float, value_size: float, truncation: float = 0.0) -> float:
    """FD_RTOL * sum |g v| + FD_ROUNDING * u(float64) * S / (h/4) + the measured truncation: what a correct
    gradient may miss the finite difference by (see the comment above)."""
    rounding = FD_ROUNDING * unit_roundoff(np.float64) * value_size / (FD_STEP / 4.0)
    return FD_RTOL * terms_size + rounding + truncation


def assert_directional_derivative(finite_difference: float, predicted: float, terms_size: float,
                                  value_size: float, truncation: float = 0.0) -> None:
    """|FD - <g, v>| <= fd_budget(sum |g v|, S, truncation): the finite difference agrees with the hand-written
    gradient. ``finite_difference`` and ``truncation`` are what ``tests/grad_checks.directional_derivative``
    returns."""
    budget = fd_budget(terms_size, value_size, truncation)
    assert abs(finite_difference - predicted) <= budget, (
        f"finite difference {finite_difference!r} vs gradient {predicted!r} "
        f"(terms {terms_size:.3g}, objective terms {value_size:.3g}, budget {budget:.3g})")


# ---------------------------------------------------------------------------------------------------------------
# Optimizer budgets (issue 10). One AdamW step rounds about 3 times on the weight-decay path (p * (1 - lr wd),
# then p - update) and about 10 times on the update (the moments, sqrt, divisions, the step size). The moments
# carry their rounding forward, at most 3 roundings per step for up to t steps, and the update's error is
# relative to the update itself, so after t steps an element's budget, in units of u, is
#     sum_s  ADAMW_P_ROUNDINGS * |p_s|  +  ADAMW_UPDATE_ROUNDINGS * s * |update_s|
# with p_s and update_s taken from a float64 run of the same steps.
# ---------------------------------------------------------------------------------------------------------------
ADAMW_P_ROUNDINGS = 3
ADAMW_UPDATE_ROUNDINGS = 10


def adamw_budget(params_history, updates_history) -> np.ndarray:
    """sum_s 3 |p_s| + 10 s |update_s| over the steps s = 1..t (see the section comment)."""
    budget = 0.0
    for s, (p, update) in enumerate(zip(params_history, updates_history), start=1):
        budget = budget + ADAMW_P_ROUNDINGS * np.abs(_f64(p)) + ADAMW_UPDATE_ROUNDINGS * s * np.abs(_f64(update))
    return budget

# Whole training runs, NumPy against torch (issue 10). Each step's loss and gradients agree to the forward and
# backward budgets (~1e-15 relative in float64, ~1e-6 in float32 at these sizes); AdamW's update m / sqrt(v) is
# invariant to the gradients' scale, so a relative gradient error passes into the update unamplified, and over
# 20 steps the differences add up to well under 1e-12 (float64) and 1e-5 (float32). The figures,
# 1e-9 and 1e-4 relative, leave room for the loss of the chaotic growth of tiny differences on longer runs.
TRAINED_LOSS_RTOL = {"float64": 1e-9, "float32": 1e-4}
TRAINED_WEIGHTS_RTOL = {"float64": 1e-9, "float32": 1e-4}
