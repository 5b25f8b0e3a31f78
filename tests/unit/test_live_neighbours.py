"""Neighbours counted as events land (models/live_neighbours.py): the counts are build's own, a
version with them laid on it fuses as one built over everything, and a list asked for before
an event never sees that event's counts."""

import numpy as np

from core.events import Event
from core.interest import InterestConfig
from models.artifact import load_recommender
from models.blend import Blend
from models.live_neighbours import LiveCounts
from models.fusion import fuse
from models.neighbours import build
from models.product import ModelVersions, ProductPolicy
from models.stream import Stream
from tests.unit.test_neighbours import dense, random_streams


def live_counts(items, times, since: int) -> LiveCounts:
    """Every user's positives at or after time ``since``, in time order, each with the user's
    previous ones."""
    live = LiveCounts()
    events = sorted((t, u, n) for u, ts in enumerate(times) for n, t in enumerate(ts.tolist()))
    for t, user, n in events:
        if t >= since:
            live.add(str(items[user][n]), [str(i) for i in items[user][:n].tolist()])
    return live


def test_live_counts_equal_builds_over_the_same_events():
    items, times = random_streams(n_items=30)
    live = live_counts(items, times, since=0)
    index = {str(i): i for i in range(30)}
    got, want = live.counted(index, 30), build(items, times, 30, keep=30)
    np.testing.assert_allclose(dense(got.covisits, 30), dense(want.covisits, 30))
    np.testing.assert_allclose(dense(got.rules, 30), dense(want.rules, 30), rtol=1e-6)


def test_a_version_with_the_later_counts_laid_on_fuses_as_one_built_over_everything():
    n = 15  # rows shorter than RULES_SHOWN: each layer's rule row is whole
    items, times = random_streams(n_users=30, n_items=n, seed=3)
    since = 6_000  # the version learned every event before; the live counts the rest
    before = [s[t < since] for s, t in zip(items, times)]
    version = build(before, [t[t < since] for t in times], n, keep=n)
    live = live_counts(items, times, since)
    laid = version.with_live(live.counted({str(i): i for i in range(n)}, n))
    whole = build(items, times, n, keep=n)
    for name in ("covisits", "rules"):
        summed = dense(getattr(laid, name), n) + dense(getattr(laid.live, name), n)
        np.testing.assert_allclose(summed, dense(getattr(whole, name), n), rtol=1e-6)
    rng = np.random.default_rng(0)
    model = np.stack([rng.permutation(n) for _ in range(len(items))])
    known = [s[: rng.integers(1, len(s) + 1)].tolist() for s in items]
    for weights in ((1.0, 1.0, 1.0), (1.0, 8.0, 0.0), (1.0, 0.0, 4.0)):
        got, want = fuse(laid, model, known, 5, weights), fuse(whole, model, known, 5, weights)
        np.testing.assert_array_equal(got.indices, want.indices)
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)


def test_a_list_sees_the_counts_of_the_events_before_it_and_never_its_own(model_path):
    """Items no version knows: only the live counts can bring them. ``c`` is shown new4, which
    ``b`` clicked after new3 long before; ``a``'s list, asked for before a's own click on new2,
    must not hold new2, though that click is counted before the lists around it are scored."""
    rec = load_recommender(model_path, Blend())
    events = [Event(f"u{n % 20}", f"i{n % 200}", "click", n) for n in range(400)]
    events[10:12] = [Event("b", "new3", "click", 10), Event("b", "new4", "click", 11)]
    events[220:222] = [Event("c", "new3", "click", 220), Event("c", "new4", "click", 221)]
    events[260:262] = [Event("a", "new1", "click", 260), Event("a", "new2", "click", 261)]
    stream = Stream.of(events, 0.1, catalog=rec.item_ids)
    versions = ModelVersions(lambda _: rec, stream, first=0)
    blend = Blend(sequence_weight=0.0, covisit_weight=100.0, rules_weight=0.0)
    lists = ProductPolicy("p", versions, InterestConfig(), blend, sequence=False,
                          live_every=50).run(stream, 10)  # fmt: skip
    row = {stream.events[n].user_id: int(stream.tested[:n].sum())
           for n in np.flatnonzero(stream.tested) if stream.events[n].item_id.startswith("new")}
    shown = {user: [stream.item_ids[i] for i in lists[r] if i >= 0] for user, r in row.items()}
    assert shown["c"][0] == "new4"
    assert "new2" not in shown["a"]
