import math

import pytest
from pydantic import ValidationError

from streams.cli.options import SettingsFromEnv
from streams.tools.cluster import child_env, settings_env
from streams.settings import Settings


def test_only_the_cli_reads_env_and_its_flags_win(monkeypatch):
    monkeypatch.setenv("STREAMREC_HALF_LIFE_S", "inf")
    monkeypatch.setenv("STREAMREC_EVENT_WEIGHTS", '{"view": 0.5, "skip": -2}')
    monkeypatch.setenv("STREAMREC_TOP_K", "7")
    assert Settings(top_k=3) == Settings(top_k=3, half_life_s=7 * 86400.0)  # env ignored
    settings = SettingsFromEnv(top_k=3)
    assert math.isinf(settings.half_life_ms)
    assert settings.event_weights == {"view": 0.5, "skip": -2.0}
    assert settings.top_k == 3
    assert settings.dlq_topic == "events.dlq"


def test_a_worker_gets_the_same_settings_through_env(monkeypatch, tmp_path):
    original = Settings(partitions=3, half_life_s=math.inf, state_dir=tmp_path, emit="coalesce",
                        event_weights={"view": 1.5})
    for key, value in settings_env(original).items():
        monkeypatch.setenv(key, value)
    assert SettingsFromEnv().model_dump() == original.model_dump()
    assert Settings().model_dump() != original.model_dump()


def test_a_child_reads_only_what_its_parent_runs_with(monkeypatch):
    parent = Settings(top_k=4)  # half_life_events unset: time decay
    shell = {"STREAMREC_HALF_LIFE_EVENTS": "5", "STREAMREC_TOP_K": "9", "PATH": "/bin"}
    env = child_env(parent, shell)
    assert env["PATH"] == "/bin" and "STREAMREC_HALF_LIFE_EVENTS" not in env
    monkeypatch.delenv("STREAMREC_HALF_LIFE_EVENTS", raising=False)
    for key, value in env.items():
        if key.startswith("STREAMREC_"):
            monkeypatch.setenv(key, value)
    assert SettingsFromEnv().model_dump() == parent.model_dump()


@pytest.mark.parametrize("bad", [{"partitions": 0}, {"emit": "sometimes"}, {"half_life_s": -1},
                                 {"event_weights": {"view": math.nan}}, {"unknown": 1}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValidationError):
        Settings(**bad)


def test_broker_url_for_faust():
    assert Settings(bootstrap="a:1,b:2").broker_url == "kafka://a:1;kafka://b:2"


def test_standby_replicas_reach_the_faust_app():
    from streams.worker.app import new_faust_app

    assert new_faust_app(Settings(), "memory://").conf.table_standby_replicas == 1
    assert new_faust_app(Settings(standby_replicas=0), "memory://").conf.table_standby_replicas == 0


def test_the_default_fetch_wait_holds_a_backlog_on_the_embedded_broker():
    """bench/backlog.py: at 10 ms a run at 600 events/s collapsed after ~74,000 events (Tansu's
    fetch costs grow with the log); at 100 ms 100,000 events kept lag under 700."""
    assert Settings().fetch_max_wait_ms == 100


def test_a_batch_is_larger_under_exactly_once_unless_one_is_set():
    """Each exactly-once batch is a Kafka transaction with fixed round trips; the Faust app's
    fetch bound is what makes a batch."""
    from streams.worker.app import new_faust_app

    def fetch_bound(**fields) -> int:
        return new_faust_app(Settings(**fields), "memory://").conf.broker_max_poll_records

    assert fetch_bound() == 2000
    assert fetch_bound(processing_guarantee="at_least_once") == 500
    assert fetch_bound(batch_size=40, processing_guarantee="at_least_once") == 40
    assert fetch_bound(batch_size=40) == 40


def test_a_batch_takes_a_slice_of_each_user_under_exactly_once_only():
    """Issue 32 #6: a batch can take at most so many events of one user under exactly-once (a
    commit can stop at the first one held back); at least once it cannot, and says so."""
    from pydantic import ValidationError

    assert Settings().max_user_slice == 20
    assert Settings(processing_guarantee="at_least_once").max_user_slice == 0
    assert Settings(user_slice=0).max_user_slice == 0
    with pytest.raises(ValidationError, match="user_slice needs exactly_once"):
        Settings(processing_guarantee="at_least_once", user_slice=5)
