"""What every notebook shares: the twins' difference against the project's rounding bound, and their source
side by side.

``compare`` prints max |NumPy - torch| next to the bound the tests allow at that element and raises when any
element is outside it. The bound is the one rule of gpt_common/tolerances.py (Higham & Mary 2019, probabilistic
rounding): |NumPy - torch| <= 2 LAMBDA u budget, element by element, where u is the dtype's unit roundoff and
the budget (in units of u) the rounding error the component's summed terms allow, carried through its steps.
``show_pair`` renders one class or function of ``numpy_gpt/X.py`` beside its ``torch_gpt/X.py`` twin with the
reading site's aligner and renderer (``gpt_cli/reading``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests/ is read from the checkout: it is not part of the installed packages

import numpy_gpt  # noqa: E402
from gpt_common import tolerances as rule  # noqa: E402  the one tolerance rule, imported here only
from tests.grad_checks import TermMagnitudes, float64_copy  # noqa: E402  the backward budgets' term sizes

__all__ = ["ROOT", "rule", "as_numpy", "twin", "compare", "compare_grads", "show_pair"]


def as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def twin(np_module, torch_module):
    """``torch_module`` holding ``np_module``'s weights in its dtype (strict: one key space), both in eval mode."""
    state = np_module.state_dict()
    dtype = next(iter(state.values())).dtype if state else np.float32
    torch_module.to(getattr(torch, np.dtype(dtype).name))
    torch_module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    np_module.eval()
    return torch_module.eval()


def compare(label: str, numpy_out, torch_out, reference, sides: tuple[str, str] = ("NumPy", "torch")) -> None:
    """Print max |NumPy - torch| and the bound at that element; raise if any element is outside its bound.

    ``reference`` is the (float64 value, budget) pair a budget function of gpt_common/tolerances.py returns for the
    same inputs; ``sides`` names the two results. The share printed is the largest share of its bound any
    element uses (below 100% passes).
    """
    _, budget = reference
    a, b = as_numpy(numpy_out), as_numpy(torch_out)
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    diff = np.where(np.isinf(a) & (a == b), 0.0, diff)
    limit = np.broadcast_to(rule.bound(budget, a.dtype), diff.shape)
    worst = np.unravel_index(np.argmax(diff), diff.shape)
    share = float(np.max(diff / limit))
    print(f"{label} ({a.dtype}): max |{sides[0]} - {sides[1]}| = {diff[worst]:.1e}, bound there {limit[worst]:.1e} "
          f"(2 LAMBDA u budget); no element uses more than {share:.0%} of its own")
    rule.assert_within_budget(a, b, budget, a.dtype)


def compare_grads(np_model, ids, targets, numpy_result, torch_result, keys) -> None:
    """The loss and each gradient in ``keys``, NumPy's hand-written ones against autograd's, each norm-wise against
    the backward budget tests/test_grad_model.py uses: ||diff|| <= 2 LAMBDA u ||(sqrt(N) + 10 steps) sum|terms|||.

    ``numpy_result`` and ``torch_result`` are (loss, {name: gradient}) pairs for the same weights, ids and targets.
    """
    reference = float64_copy(np_model)
    magnitudes = TermMagnitudes(reference)
    loss64, _ = numpy_gpt.loss_and_grads(reference, ids, targets)  # records every gradient's term sizes, in float64
    steps = 2 * len(list(np_model.modules()))  # forward and backward through every module, at most
    (loss, grads), (torch_loss, torch_grads) = numpy_result, torch_result
    dtype = next(iter(grads.values())).dtype
    pairs = [("loss", np.float64(loss), as_numpy(torch_loss), abs(loss64), int(np.size(targets)))]
    pairs += [(key, grads[key], as_numpy(torch_grads[key]), magnitudes.magnitudes[key], ids.size) for key in keys]
    for key, a, b, magnitude, terms in pairs:
        limit = float(rule.bound(np.linalg.norm(rule.grad_budget(magnitude, terms, steps)), dtype))
        error = float(np.linalg.norm(np.float64(a) - np.float64(b)))
        shape = f" {tuple(np.shape(a))}" if np.ndim(a) else ""
        print(f"{key}{shape}: ||NumPy - torch|| = {error:.1e}, bound {limit:.1e} ({error / limit:.0%} of it)")
        rule.assert_grad_norm_within_budget(a, b, magnitude, terms, steps, dtype, name=key)


# ------------------------------------------------------------------------------------------------------------
# Source side by side: the reading site's rows, cut to one definition, with its styles scoped to the table.


def _scoped_styles() -> str:
    """The reading site's stylesheet without its page-wide rules (body, nav, headings), which would restyle
    the notebook around the table."""
    from gpt_cli.reading.css import stylesheet

    rules = [r.strip() + " }" for r in stylesheet().split("}") if r.strip()]
    return "\n".join(r for r in rules if re.match(r"(td|tr|table|\.legend)[\s.,:]", r))


def _lines_of(source, qualname: str) -> range:
    found = [d for d in source.definitions if d.qualname == qualname]
    return range(found[0].start - 1, found[0].end) if found else range(0)


def show_pair(pair_name: str, qualname: str):
    """``qualname`` (a class or function) of numpy_gpt/<pair_name>.py beside its torch twin, as the reading
    site aligns and colours it (white: identical, blue: framework spelling, orange: substance)."""
    from IPython.display import HTML

    from gpt_cli.reading.align import align
    from gpt_cli.reading.render import code_row, highlight_lines, legend
    from gpt_cli.reading.source import Pair, read_source

    pair = Pair(pair_name, *(read_source(ROOT, f"{pkg}/{pair_name}.py") for pkg in ("numpy_gpt", "torch_gpt")))
    left_span, right_span = _lines_of(pair.numpy, qualname), _lines_of(pair.torch, qualname)
    rows = [r for r in align(pair) if r.left in left_span or r.right in right_span]
    left, right = highlight_lines(pair.numpy.text), highlight_lines(pair.torch.text)
    body = "\n".join(code_row(row, left, right, None) for row in rows)
    return HTML(f"<style>{_scoped_styles()}</style>{legend()}"
                '<table class="pair"><colgroup><col class="ln"><col><col class="ln"><col></colgroup>'
                f'<thead><tr><th class="file" colspan="2">{pair.numpy.path}</th>'
                f'<th class="file" colspan="2">{pair.torch.path}</th></tr></thead><tbody>{body}</tbody></table>')
