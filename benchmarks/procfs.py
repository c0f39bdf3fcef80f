"""Process memory from Linux's /proc: resident set now (VmRSS), its high-water mark (VmHWM), and resetting that mark.

Torch-free on purpose: the NumPy memory probe imports it in a process that must never load torch.
"""

from __future__ import annotations

__all__ = ["status_kib", "reset_peak_rss"]


def status_kib(field_name: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (e.g. "VmRSS", "VmHWM"); None where /proc is not there."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM (peak resident set) to the current RSS: Linux's ``echo 5 > /proc/self/clear_refs``."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
