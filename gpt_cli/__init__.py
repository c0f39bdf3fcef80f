"""Command-line entry points: ``python -m gpt_cli <command>`` (also installed as ``gpt-twins``)."""
