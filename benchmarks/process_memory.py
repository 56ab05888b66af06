"""Peak resident memory of the current process, for the side-by-side benchmark scripts (Linux).

Each implementation runs in a fresh process; its peak memory is VmHWM (peak RSS) after the call
minus VmRSS just before it, with VmHWM first reset to the current RSS.
"""

from __future__ import annotations


def status_kb(field: str) -> int:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM, ...) in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss() -> bool:
    """Set VmHWM (peak RSS) to the current RSS (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
