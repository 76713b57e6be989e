"""Progress lines for long work: done/total, rate and ETA, throttled so logs stay readable."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("lwgan.progress")


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressLog:
    """Callable ``(done, total)`` that logs ``label: done/total unit (pct) rate/s, ETA m:ss``.

    Logs at most every `every_s` seconds, and always when the work completes. A total of 0 means the
    amount is not known in advance (a video decoded as it goes): the line then gives what is done, the
    rate and the elapsed time, without a percentage or an ETA.
    """

    def __init__(self, label: str, unit: str = "frames", every_s: float = 5.0, start_done: int = 0) -> None:
        """start_done: work already done when this starts (a resumed run); the rate counts only the rest."""
        self.label, self.unit, self.every_s = label, unit, every_s
        self.start = time.perf_counter()
        self.last = -float("inf")
        self.first = start_done

    def __call__(self, done: int, total: int, eta_s: float | None = None, extra: str = "") -> None:
        now = time.perf_counter()
        known = total > 0  # 0: a count not known in advance (frames of a video being decoded)
        if (done < total or not known) and now - self.last < self.every_s:
            return
        self.last = now
        elapsed = now - self.start
        rate = (done - self.first) / elapsed if elapsed > 0 else 0.0
        if not known:
            log.info("%s: %d %s, %.1f %s/s, elapsed %s%s", self.label, done, self.unit, rate, self.unit,
                     format_seconds(elapsed), f" | {extra}" if extra else "")
            return
        if eta_s is None and rate > 0:
            eta_s = (total - done) / rate
        pct = 100.0 * done / total if total else 100.0
        eta = format_seconds(eta_s) if eta_s is not None else "?"
        log.info("%s: %d/%d %s (%.0f %%), %.1f %s/s, elapsed %s, ETA %s%s", self.label, done, total,
                 self.unit, pct, rate, self.unit, format_seconds(elapsed), eta,
                 f" | {extra}" if extra else "")
