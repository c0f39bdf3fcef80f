"""How a run is driven, framework-neutral: the run loop of ``gpt_cli train`` and what it needs.

``gpt_common`` proper holds what the two twins must agree on (config, formats, validation); this
package holds how a training run is driven, once for both: ``run`` (the loop), ``train_state``
(checkpoint directories, written atomically), ``data_order`` (which windows each step reads),
``schedule`` (appendix D's learning rate), ``param_groups`` and ``optim_state`` (AdamW's groups and
its state in the shared key space) and ``plot`` (the book's loss figure). Each twin's ``trainer.py``
is the adapter the loop drives; each twin's ``train.py`` holds the book's loops.
"""
