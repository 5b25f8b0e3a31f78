"""The content-only policy (models/content_knn.py): it recommends what is like the user's last
items by text alone, an announced item before its first event, and never one not yet announced
or missing from the catalog."""

from __future__ import annotations

import numpy as np

from core.events import Event
from core.items import Item
from models.content_knn import ContentKNN, catalog_content
from models.stream import Stream


def test_an_announced_item_like_the_users_last_is_recommended_before_its_first_event():
    events = [Event("u", "a1", "click", 1_000, None, None), Event("v", "b1", "click", 1_500, None, None),
              Event("u", "a2", "click", 2_000, None, None), Event("u", "b1", "click", 3_000, None, None),
              Event("w", "a3", "click", 4_000, None, None), Event("w", "late", "click", 5_000, None, None),
              Event("w", "gone", "click", 6_000, None, None)]  # fmt: skip
    stream = Stream.of(events, warmup=0.0)
    catalog = [Item("a1", title="x"), Item("a2", title="x"), Item("a3", title="x", ts=0),
               Item("b1", title="y"), Item("late", title="x", ts=10_000)]  # "gone": not in it
    vectors = np.array([[1, 0], [1, 0], [0.9, 0.1], [0, 1], [1, 0]], np.float32)
    content, announced = catalog_content(stream, catalog, vectors)
    assert not content[stream.item_ids.index("gone")].any()
    lists = ContentKNN(stream.n_users, content, announced).run(stream, k=2)
    # u's second event (a2, after a1): a3 is announced and like a1, though nobody has it yet
    first = [stream.item_ids[i] for i in lists[0] if i >= 0]
    assert first[0] in ("a2", "a3") and "late" not in first and "gone" not in first
    # u's third event (b1, after a1 and a2): the last items are both a's: a3 first, b1 after
    assert stream.item_ids[lists[1][0]] == "a3"


def test_the_new_item_slice_is_the_tested_events_of_items_first_seen_after_the_warm_up():
    from models.prequential import new_item_tests

    events = [Event("u", "old", "click", 1, None, None), Event("v", "old", "click", 2, None, None),
              Event("u", "new", "click", 3, None, None), Event("v", "new", "click", 4, None, None),
              Event("v", "old", "click", 5, None, None)]  # fmt: skip
    stream = Stream.of(events, warmup=0.4)  # events 2 and on are tested (u's and v's)
    assert new_item_tests(stream).tolist() == [True, True, False]


def test_the_source_ranker_proposes_an_announced_item_by_its_content_only_with_content():
    from models.source_ranker import SourceRanker

    # topic a: items a0-a5, topic b: b0-b5; "a-new" is in the catalog from the start and is
    # like the a's, but no event has it until the last one, the test
    log = [(f"u{n}", f"{'ab'[n % 2]}{step}") for step in range(6) for n in range(20)]
    events = [Event(u, i, "click", 1_000 * n, None, None) for n, (u, i) in enumerate(log)]
    events.append(Event("u0", "a-new", "click", 1_000 * len(events), None, None))
    tested = Stream.of(events, warmup=0.0)
    catalog = [Item(i, title="x") for i in tested.item_ids]
    vectors = np.array([[1, 0] if i.startswith("a") else [0, 1] for i in tested.item_ids],
                       np.float32)  # fmt: skip
    content, announced = catalog_content(tested, catalog, vectors)

    def last_list(extras):
        ranker = SourceRanker(tested.n_users, len(tested.item_ids), ("popularity",),
                              extras=extras)  # fmt: skip
        return [tested.item_ids[i] for i in ranker.run(tested, k=10)[-1] if i >= 0]

    with_content = last_list([ContentKNN(tested.n_users, content, announced)])
    assert with_content[0] == "a-new"  # the ranker learned that content predicts here
    assert "a-new" not in last_list([])  # popularity alone cannot know it
