"""kill -9 during ingest: every acknowledged event survives, no batch is half stored."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from serving import run_load_then_signal


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_event(new_database: Callable, tmp_path: Path) -> None:
    outcome = run_load_then_signal(new_database(), tmp_path / "server.log", signal.SIGKILL)
    assert all(count == 50 for count in outcome.stored.values()), "a batch was half stored"
    assert outcome.acked <= set(outcome.stored), "an acknowledged batch was lost"
    assert set(outcome.stored) <= outcome.sent
    assert len(outcome.acked) >= 60


@pytest.mark.slow
def test_sigterm_shuts_down_cleanly_after_committing(
    new_database: Callable, tmp_path: Path
) -> None:
    outcome = run_load_then_signal(new_database(), tmp_path / "server.log", signal.SIGTERM)
    assert outcome.code == 0
    assert all(count == 50 for count in outcome.stored.values()), "a batch was half stored"
    assert outcome.acked <= set(outcome.stored), "an acknowledged batch was lost"
    assert set(outcome.stored) <= outcome.sent
