"""Progress on standard error for steps that take longer than a couple of seconds.

:func:`elapsed` shows a tqdm bar that counts the seconds of one opaque step (a Yosys run, a
long RTL simulation) that reports no progress of its own.
"""

from __future__ import annotations

import contextlib
import sys
import threading

__all__ = ["elapsed"]


@contextlib.contextmanager
def elapsed(description: str, enabled: bool = True, tick_s: float = 0.5):
    """Show ``description`` and the elapsed time on stderr while the body runs.

    Parameters
    ----------
    description : str
        What is running, e.g. ``"yosys synth allocator"``.
    enabled : bool
        False shows nothing (``--quiet``).
    tick_s : float
        Refresh period of the bar in seconds.
    """
    if not enabled:
        yield
        return
    from tqdm import tqdm
    stop = threading.Event()
    bar = tqdm(desc=description, file=sys.stderr, bar_format="{desc}: {elapsed} elapsed")

    def tick():
        while not stop.wait(tick_s):
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()
