"""Progress lines: done/total, rate and ETA when the total is known; no invented ETA when it is not."""

from __future__ import annotations

import logging

from lwgan.progress import ProgressLog


def test_known_and_unknown_totals(caplog):
    caplog.set_level(logging.INFO, logger="lwgan.progress")
    known = ProgressLog("fit", "frames", every_s=0.0)
    known(5, 20)
    known(20, 20)
    unknown = ProgressLog("detect clip.mp4", "frames", every_s=3600.0)
    for done in range(1, 6):
        unknown(done, 0)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("fit: 5/20 frames (25 %)") and "ETA" in lines[0]
    assert lines[1].startswith("fit: 20/20 frames (100 %)") and lines[1].endswith("ETA 0:00")
    # unknown total: the first call logs, the next four fall inside the hour and are throttled
    assert len(lines) == 3 and lines[2].startswith("detect clip.mp4: 1 frames, ")
    assert "ETA" not in lines[2] and "%" not in lines[2] and "/0" not in lines[2]
