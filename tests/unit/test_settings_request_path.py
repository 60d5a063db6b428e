"""The request-path settings (decision 0010): worker count, access log sampling, the GC."""

from __future__ import annotations

import os

import pytest

from socius.settings import SettingsError, load_settings

PG = "postgresql://u@db/socius"


def test_workers_default_to_one_per_core_only_where_processes_can_share_state() -> None:
    cores = os.cpu_count() or 1
    assert load_settings({}).effective_workers == 1  # embedded SQLite
    assert load_settings({}, redis_url="redis://r").effective_workers == 1  # still SQLite
    assert load_settings({}, database_url=PG).effective_workers == 1  # no shared Redis
    clustered = load_settings({}, database_url=PG, redis_url="redis://r")
    assert clustered.effective_workers == cores
    # A fixed node id is one process's: ids embed it.
    assert clustered.replace(node_id=3).effective_workers == 1
    assert clustered.replace(workers=3).effective_workers == 3


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"workers": -1}, "SOCIUS_WORKERS"),
        ({"access_log_sample_rate": 1.5}, "SOCIUS_ACCESS_LOG_SAMPLE_RATE"),
        ({"access_log_sample_rate": -0.1}, "SOCIUS_ACCESS_LOG_SAMPLE_RATE"),
        ({"access_log_slow_ms": -1}, "SOCIUS_ACCESS_LOG_SLOW_MS"),
        ({"gc_gen0_threshold": -1}, "SOCIUS_GC_GEN0_THRESHOLD"),
    ],
)
def test_bad_values_name_the_setting(overrides: dict[str, float], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings({}, **overrides)


def test_the_environment_sets_them() -> None:
    s = load_settings(
        {
            "SOCIUS_ACCESS_LOG_SAMPLE_RATE": "0.25",
            "SOCIUS_GC_FREEZE": "false",
            "SOCIUS_GC_GEN0_THRESHOLD": "0",
        }
    )
    assert s.access_log_sample_rate == 0.25
    assert s.gc_freeze is False
    assert s.gc_gen0_threshold == 0


def test_tune_gc_freezes_start_up_objects_and_spaces_young_collections() -> None:
    import gc

    from socius.bootstrap import tune_gc

    before = gc.get_threshold()
    try:
        tune_gc(load_settings({}, gc_gen0_threshold=12_345))
        assert gc.get_threshold()[0] == 12_345
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    tune_gc(load_settings({}, gc_gen0_threshold=0, gc_freeze=False))
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
