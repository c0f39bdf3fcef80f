"""The reading site: every NumPy file beside its torch twin, aligned line by line, with the proof beside the code.

``build_site(root, out)`` (``python -m gpt_cli read``, ``make read``) writes static HTML
that opens from ``file://``: CSS inline, no scripts, no network. Modules:

- ``spelling``  the one table of framework spellings treated as equal (``np.``/``torch.``, ``axis=``/``dim=``, ...)
- ``source``    what the tree holds: twin pairs, framework-neutral modules, outlines, the tests that name a component
- ``align``     rows pairing the two files (difflib over lines rewritten by the spelling table)
- ``proof``     max |NumPy - torch| per component, computed at build time
- ``render``    the HTML (Pygments for highlighting)
"""

from .site import build_site

__all__ = ["build_site"]
