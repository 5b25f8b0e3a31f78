"""Exploration and cold start through the broker (issue 18): a worker exploring with epsilon-greedy
sends records whose every item says its propensity, whether it was explored and where it came
from, with never more explored slots than the budget; and a user new to it, once the worker has
read the item statistics, gets the trending items as their first record."""

from __future__ import annotations

import orjson
import pytest

from core.events import Event, encode_event
from core.generator import GeneratorConfig, generate
from streams.tools.cluster import wait_for, wait_until_ready, worker_stats
from streams.trainer.off_policy_logs import evaluate_logs
from tests.helpers import consume, produce

pytestmark = pytest.mark.integration

BUDGET, EPSILON, POOL = 2, 0.5, 20


def test_records_carry_propensities_within_the_budget_and_a_new_user_trends(settings, workers):
    live = settings.model_copy(update={
        "explore": "epsilon", "explore_budget": BUDGET, "explore_epsilon": EPSILON,
        "explore_pool": POOL, "cold_start_events": 1, "top_k": 5})  # fmt: skip
    wait_until_ready(live.web_port, timeout=90, process=workers(live))
    history = generate(GeneratorConfig(n_users=80, n_items=200, events_per_user=10, seed=5))
    produce(live, [(e.user_id.encode(), encode_event(e)) for e in history])
    wait_for(lambda: (s := worker_stats(live.web_port))["applied"] >= len(history)
             and s["items_known"] >= 50, 90, "the history applied and its items' statistics read")

    end = max(e.ts for e in history)
    first = Event("newcomer", "i7", "click", end + 1000, None, "newcomer-first")
    produce(live, [(b"newcomer", encode_event(first))])
    records = [orjson.loads(r.value) for r in consume(
        live.bootstrap, live.recs_topic, 0, 60,
        done=lambda rs: len(rs) > len(history) and any(b"newcomer-first" in r.value
                                                        for r in rs))]  # fmt: skip

    explored_slots = 0
    for record in records:
        assert record["exploration"] == {"policy": "epsilon", "budget": BUDGET, "epsilon": EPSILON}
        items = record["items"]
        assert sum(i["explored"] for i in items) <= BUDGET
        for item in items:
            assert item["source"] in ("model", "explore", "new", "trending")
            assert item["explored"] == (item["source"] in ("explore", "new"))
        if any(i["source"] == "trending" for i in items):  # a cold user's: nothing explored
            assert all(i["propensity"] == 1.0 and not i["explored"] for i in items)
            continue
        for slot, item in enumerate(items):
            if slot < len(items) - BUDGET:
                assert item["propensity"] == 1.0 and item["source"] == "model"
            elif item["explored"]:  # epsilon over the pool (or its new items)
                assert EPSILON / POOL <= item["propensity"] <= EPSILON
                explored_slots += 1
            else:  # an exploring slot that kept the model's item
                assert item["propensity"] == 1 - EPSILON
    assert explored_slots > 0

    [newcomer] = [r for r in records if r["trigger"]["event_id"] == "newcomer-first"]
    sources = [i["source"] for i in newcomer["items"]]
    assert sources == ["trending"] * len(sources) and len(sources) == live.top_k
    assert "i7" not in [i["item_id"] for i in newcomer["items"]]  # what they engaged with
    scores = [i["score"] for i in newcomer["items"]]  # the decayed popularity, highest first
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    stats = wait_for(lambda: (s := worker_stats(live.web_port))["items_explored"] >= explored_slots
                     and s, timeout=30, what="the explored slots counted")  # counted after commit
    assert stats["trending_lists"] >= 1 and stats["items_explored"] == explored_slots

    # feedback on 60 of the explored lists, each a click on its last item: what `streamrec ope`
    # reads back, with the records, to estimate other policies
    answered = [r for r in records if r["items"] and r["items"][-1]["explored"]][:60]
    feedback = [Event(r["user_id"], r["items"][-1]["item_id"], "click", end + 2000 + n, None,
                      f"fb-{n}", r["rec_id"]) for n, r in enumerate(answered)]  # fmt: skip
    produce(live, [(e.user_id.encode(), encode_event(e)) for e in feedback])
    wait_for(lambda: worker_stats(live.web_port)["applied"] >= len(history) + 1 + len(feedback),
             60, "the feedback applied")  # fmt: skip
    result = evaluate_logs(live, [EPSILON, 0.0, 1.0], idle_timeout=2.0)
    on_policy, greedy, always = result["estimates"]
    assert result["feedback_events"] == len(feedback) == result["lists_with_positives"]
    assert on_policy["ips"] == pytest.approx(result["observed_rate"], rel=1e-9)
    assert greedy["ips"] == 0.0  # every click was on an explored item: greedy never shows one
    assert always["ips"] == pytest.approx(on_policy["ips"] / EPSILON, rel=1e-9)
