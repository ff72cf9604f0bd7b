"""The daemon's cycle collector settings (es.daemon.lifecycle.tune_collector)."""

from __future__ import annotations

import gc

from es.daemon.lifecycle import COLLECTOR_THRESHOLDS, tune_collector


def test_a_daemon_collects_young_objects_rarely_and_leaves_start_up_out() -> None:
    before = gc.get_threshold()
    try:
        tune_collector()
        assert gc.get_threshold() == COLLECTOR_THRESHOLDS
        assert gc.get_freeze_count() > 0  # what start-up built: never walked by the collector
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
