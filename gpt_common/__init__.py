"""The framework-neutral core that both twins import: what a config means, how a bad input is reported,
what a checkpoint file holds, how text becomes token ids and windows, and where random numbers come from.

Nothing here imports NumPy's twin or torch's: ``numpy_gpt`` and ``torch_gpt`` each import this package
and never each other, so the two can only differ in the framework code that is theirs.

- ``config``: ``GPTConfig`` and the presets; accepts the book's dict unchanged.
- ``validation``: the checks at public boundaries, one set of ``ValueError`` messages.
- ``tokenizer``: the book's word tokenizers, the bundled ranks and text files, the tokenizer checks.
- ``bpe``: the BPE ranks-file format, GPT-2's byte alphabet, BPE training.
- ``checkpoint``: the one key table (ours <-> Hugging Face GPT-2) and the checkpoint format and checks.
- ``sampling``: ``SamplingParams`` and the one stream of uniform draws both twins sample from.
- ``data``: token ids as a read-only array, and the sliding-window arithmetic.
- ``rng``: explicit NumPy generators (``as_rng``).
- ``training/``: how a run is driven, once for both twins (the ``gpt_cli train`` loop, its settings,
  checkpoints, data order, schedule, AdamW's groups and state format, the loss plot); it imports this
  core, and nothing in the core imports it.
"""
