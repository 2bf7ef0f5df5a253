"""Peak memory of a process (and of the processes below it) while a benchmark runs: the
kernel's VmHWM where Linux reports it, a polling RSS sampler otherwise."""

from __future__ import annotations

import threading
from pathlib import Path


def rss(with_descendants: bool = False) -> int:
    """Resident memory of this process, plus that of every process below it if asked (shared
    pages counted in each: an upper bound)."""
    import psutil

    me = psutil.Process()
    processes = [me, *me.children(recursive=True)] if with_descendants else [me]
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:  # it exited between the listing and the read
            pass
    return total


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) for this process, where Linux allows it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_hwm() -> int | None:
    """This process's peak resident memory in bytes (VmHWM), where Linux reports it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class RssSampler:
    """Polls RSS while ingestion runs: a fallback where VmHWM cannot be reset, and the only
    measure of a process tree (it can miss peaks inside long C calls that hold the GIL)."""

    def __init__(self, interval: float = 0.002, with_descendants: bool = False) -> None:
        self._with_descendants = with_descendants
        self.peak = rss(with_descendants)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss(self._with_descendants))
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss(self._with_descendants))
