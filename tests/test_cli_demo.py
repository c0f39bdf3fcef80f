"""The demo command: both implementations built at 124M, counted, compared and generating the same tokens."""

import re

from gpt_cli.__main__ import main
from gpt_common.tolerances import BENCHMARK_NORMWISE


def test_demo_reports_counts_agreement_and_labels_the_model_untrained(capsys):
    assert main(["demo", "--seq-len", "8", "--max-new-tokens", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("163,009,536 (output head separate), 124,412,160 (tied to the token embedding)") == 2
    diff = float(re.search(r"max \|numpy - torch\| logits: (\S+)", out).group(1))
    # A norm-wise figure on logits of order 1: the benchmarks' fp32 check (gpt_common/tolerances.py BENCHMARK_NORMWISE).
    assert diff < BENCHMARK_NORMWISE["fp32"].rtol
    assert "UNTRAINED" in out and "same tokens: True" in out
