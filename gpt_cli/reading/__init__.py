"""The reading site: every NumPy file beside its torch twin, aligned line by line, with the proof beside the code.

``build_site(root, out)`` (``python -m gpt_cli read``, ``make read``) writes static HTML
that opens from ``file://``: CSS inline, no scripts, no network. Modules:

- ``spelling``     the one table of framework spellings treated as equal (``np.``/``torch.``, ``axis=``/``dim=``, ...)
- ``source``       what the tree holds: twin pairs, framework-neutral modules, each file's classes and functions
- ``tests_index``  which tests name each component
- ``align``        rows pairing the two files (pinned by definition names, then difflib after the spelling table)
- ``proof``        max |NumPy - torch| per component at build time, with its bound from gpt_common/tolerances.py
- ``render``, ``index``, ``css``  the HTML (Pygments for highlighting); ``site`` puts it together

It lives under ``gpt_cli`` because it is a tool over the packages, like the other commands: it
imports both twins, which neither twin nor ``gpt_common`` may do.
"""

from .site import build_site

__all__ = ["build_site"]
