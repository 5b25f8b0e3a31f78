"""The worker's web side: ``/stats/``, the per-user views, ``/metrics`` and what they read.

Apart from the data path (streams/worker/user_path.py), so the path reads as the pipeline and this
as what a worker answers about it. The per-user views answer on the worker that owns the user's
partition; any other worker forwards the request there (``table_route``), so clients may ask
any worker. They read a stored state as the steps do (:func:`stored_state`) and serve a list as
the worker's records do (:func:`recommendations`).

With ``settings.api_token`` every page here asks for ``Authorization: Bearer <token>``: the user
views (user data), ``/stats/`` and ``/metrics`` (what the worker holds and does). Our own
clients (streams/tools/cluster.py: readiness, ``streamrec health``) send it. A forwarded query
is checked twice: here, before it is forwarded, and by the owner, to which Faust's router
passes the request's headers, Authorization included (faust/app/router.py ``_route_req``).
Faust's own pages are off (streams/worker/app.py) but for its index ``/``, which says
``{"status": "OK"}`` and nothing else.
"""

from __future__ import annotations

import functools
import hmac
import time
from typing import Any, Awaitable, Callable

import faust
import numpy as np
from pydantic import SecretStr

from core.events import parse_ts
from core.interest import UserState, decay_factor
from models.item_board import ItemBoard
from streams.kafka_edge import compat
from streams.settings import Settings
from streams.steps.records import record_items, serve_stored
from streams.steps.users import in_model_space, load_user_state
from streams.worker.metrics import CONTENT_TYPE, PipelineStats, WorkerMetrics
from streams.worker.serving import Active, Serving


def consumer_lag(app: faust.App, topic: str, stats: PipelineStats) -> dict[int, int]:
    """Per partition of ``topic`` this worker owns and has read from: high watermark minus the
    next offset to process."""
    lag = {}
    consumer = app.consumer
    try:
        for tp in consumer.assignment():
            if tp.topic == topic and tp.partition in stats.next_offsets:
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    lag[tp.partition] = max(0, highwater - stats.next_offsets[tp.partition])
    except AssertionError:  # revoked in between (aiokafka asserts): /stats/ must still answer
        return {}
    return lag


def table_size(table: faust.Table) -> int:
    """Keys in the table's local RocksDB partitions, by RocksDB's own estimate (no scan)."""
    dbs = compat.rocksdb_partitions(table)
    return sum(db.property_int_value("rocksdb.estimate-num-keys") or 0 for db in dbs.values())


def worker_metrics(
    app: faust.App, users: faust.Table, topic: str, serving: Serving, stats: PipelineStats
) -> WorkerMetrics:
    """The worker's Prometheus registry: ``stats`` and the histograms the user path observes, with
    lag, table size and model read when scraped."""
    return WorkerMetrics(
        stats,
        model=lambda: {"version": serving.recommender.version, "kind": serving.recommender.kind},
        lag=lambda: consumer_lag(app, topic, stats),
        users=lambda: table_size(users),
    )


def query_time(text: str | None, now_ms: int) -> int:
    """``?at=`` as epoch ms, ``now_ms`` when absent; ValueError unless it is an integer an event
    time can be (10**30 would overflow the decay and the JSON answer)."""
    return now_ms if text is None else parse_ts(int(text))


Handler = Callable[..., Awaitable["faust.web.Response"]]  # a view method or page function


def bearer_ok(authorization: str | None, token: SecretStr) -> bool:
    """Whether an ``Authorization`` header carries ``token`` as a bearer token. The token is
    compared with ``hmac.compare_digest``, so the time taken tells nothing of how much matched;
    an empty token setting accepts nothing (an env variable left empty must not open the API)."""
    scheme, _, given = (authorization or "").partition(" ")
    expected = token.get_secret_value()
    if scheme.lower() != "bearer" or not expected:
        return False
    # surrogatepass: a header aiohttp could not decode still becomes bytes, never a TypeError,
    # and never the bytes of a valid token.
    return hmac.compare_digest(
        given.strip().encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def token_required(token: SecretStr | None) -> Callable[[Handler], Handler]:
    """Wrap a view method (or page function) so it answers 401 unless the request has the bearer
    token; no-op without a token. Outside ``table_route``, so a refused query is never
    forwarded."""

    def wrap(handler: Handler) -> Handler:
        if token is None:
            return handler

        @functools.wraps(handler)
        async def guarded(view: faust.web.View, request: faust.web.Request, *args: Any,
                          **kwargs: Any) -> faust.web.Response:
            if not bearer_ok(request.headers.get("Authorization"), token):
                return view.json(
                    {"error": "this worker asks for 'Authorization: Bearer <token>'"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="streamrec"'},
                )
            return await handler(view, request, *args, **kwargs)

        return guarded

    return wrap


def stored_state(raw: bytes, user_id: str, active: Active) -> UserState:
    """A stored value as the steps read it (:func:`streams.steps.users.load_user_state`: one
    the codec cannot read is a fresh state, logged), in the served model's space."""
    recommender, older = active
    state = load_user_state(raw, user_id, recommender.dim, recommender.codebook, older)
    return in_model_space(state, recommender.item_vector, recommender.dim, recommender.tag)


def recommendations(user_id: str, raw: bytes, active: Active, settings: Settings,
                    board: ItemBoard | None) -> dict[str, Any]:  # fmt: skip
    """What ``GET /users/{id}/recommendations`` answers for the user's stored value: the list
    the worker's record for their last event holds, served again through the records' path
    with the settings' list rules and the worker's item ``board``, seeded by that record's id
    (``rec_id``, in the answer; :func:`streams.steps.records.serve_stored`), so asking twice
    gives the same list. A value that cannot be read is a fresh state, as in the steps: the
    answer is a new user's list, not an error."""
    state = stored_state(raw, user_id, active)
    recommender = active.recommender
    scored, id_ = serve_stored(recommender, user_id, state, settings.top_k, settings.list_rules,
                               board)  # fmt: skip
    return {
        "user_id": user_id,
        "rec_id": id_,
        "items": record_items(scored, 0),
        "model_version": recommender.version,
        "last_event_ts": state.last_ts,
        "position": list(state.position),
    }


def register_views(
    app: faust.App,
    users: faust.Table,
    settings: Settings,
    serving: Serving,
    stats: PipelineStats,
    metrics: WorkerMetrics,
    board: ItemBoard | None,
) -> None:
    """Add the worker's pages to ``app``, each behind ``settings.api_token`` when it is set;
    ``board`` is the worker's item statistics board (exploration, trending), None when its
    lists do not read them."""
    protected = token_required(settings.api_token)

    @app.page("/stats/")
    @protected
    async def stats_view(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
        assignment = app.consumer.assignment() if app.consumer else set()
        return web.json(
            {
                **stats.as_dict(),
                "model_version": serving.recommender.version,
                "model_kind": serving.recommender.kind,
                "last_model_refusal": serving.last_refusal,
                "assigned": sorted(
                    tp.partition for tp in assignment if tp.topic == settings.events_topic
                ),
                "lag": consumer_lag(app, settings.events_topic, stats),
                "rebalancing": bool(app.rebalancing),
                "recovered": app.tables.recovery.completed.is_set(),
            }
        )

    def recommendations_page(view: faust.web.View, request: faust.web.Request, user_id: str,
                             raw: bytes) -> faust.web.Response:  # fmt: skip
        """The list the user's last record holds, served again (:func:`recommendations`)."""
        return view.json(recommendations(user_id, raw, serving.active, settings, board))

    def interest_page(view: faust.web.View, request: faust.web.Request, user_id: str,
                      raw: bytes) -> faust.web.Response:  # fmt: skip
        """The decayed interest vector at ``?at=`` (epoch ms; default now) and its raw state."""
        state = stored_state(raw, user_id, serving.active)
        try:
            at = query_time(request.query.get("at"), int(time.time() * 1000))
        except ValueError:
            return view.json({"error": "at must be epoch milliseconds"}, status=400)
        interest = settings.interest
        factor = (
            1.0  # the clock is the user's own events: nothing decays between them
            if interest.half_life_events is not None
            else decay_factor(max(0, at - state.last_ts), interest.half_life_ms)
        )
        return view.json(
            {
                "user_id": user_id,
                "at": at,
                "decay": factor,
                "interest": (state.vector * np.float32(factor)).tolist(),
                "vector": state.vector.tolist(),  # as stored, at last_ts
                "last_ts": state.last_ts,
                "count": state.count,
                "recent": list(state.recent),
                "recent_weights": list(state.recent_weights),
                "position": list(state.position),
            }
        )

    for path, answer in (("/users/{user_id}/recommendations", recommendations_page),
                         ("/users/{user_id}/interest", interest_page)):
        table_page(app, protected, users, path, "user_id", "unknown user", answer)

    @app.page("/metrics")
    @protected
    async def metrics_view(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
        return web.bytes(metrics.exposition(), content_type=CONTENT_TYPE)


def register_item_view(app: faust.App, items: faust.Table, settings: Settings) -> None:
    """GET /items/ID/stats: the item's statistics (streams/worker/item_path.py), on whichever worker
    holds the item's partition (the request is routed there), its popularity as of the newest
    event time the item has seen."""
    from core.item_stats import decode_item_stats
    from streams.steps.items import stats_view

    protected = token_required(settings.api_token)
    half_life_ms = settings.popularity_half_life_s * 1000.0

    def answer(view: faust.web.View, request: faust.web.Request, item_id: str,
               raw: bytes) -> faust.web.Response:  # fmt: skip
        stats = decode_item_stats(raw)
        return view.json({"item_id": item_id, **stats_view(stats, stats.last_ts, half_life_ms)})

    table_page(app, protected, items, "/items/{item_id}/stats", "item_id",
               "no statistics for item", answer)  # fmt: skip


def register_item_vector_view(app: faust.App, serving: Serving, settings: Settings) -> None:
    """GET /items/ID/vector: the learned vector this worker scores the item with (online item
    learning, streams/worker/followers.py), answered locally: every worker has every item's."""
    protected = token_required(settings.api_token)

    @app.page("/items/{item_id}/vector")
    class ItemVectorView(faust.web.View):
        @protected
        async def get(self, request: faust.web.Request, item_id: str) -> faust.web.Response:
            learned = serving.learned.get(item_id)
            if learned is None:
                return self.json({"error": f"no learned vector for item {item_id}"}, status=404)
            return self.json({
                "item_id": item_id, "updates": learned.updates, "model_tag": learned.model,
                "sent_ms": learned.sent_ms,
                "norm": float(np.linalg.norm(learned.vector)),
                "in_artifact": item_id in serving.artifact.index,
                "serving": bool(np.array_equal(serving.recommender.item_vector(item_id),
                                               learned.vector)),  # this one, not the artifact's
            })  # fmt: skip


def table_page(app: faust.App, protected: Callable[[Handler], Handler], table: faust.Table,
               path: str, key: str, missing: str,
               answer: Callable[..., faust.web.Response]) -> None:  # fmt: skip
    """A page about one key of ``table``, answered by the worker that holds the key's partition
    (Faust routes the request there): ``answer(view, request, key, raw)`` with the stored value,
    or 404 (``missing`` and the key) for a key the table does not have."""

    @app.page(path, name=path)
    class TableView(faust.web.View):
        @protected
        @app.table_route(table=table, match_info=key)
        async def get(self, request: faust.web.Request, **match: str) -> faust.web.Response:
            raw = table.get(match[key].encode())
            if raw is None:
                return self.json({"error": f"{missing} {match[key]}"}, status=404)
            return answer(self, request, match[key], raw)
