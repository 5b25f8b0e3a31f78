"""Every worker follows the internal topics: model updates, learned item vectors, item statistics."""

from __future__ import annotations

import asyncio
import threading

from models.item_board import ItemBoard
from streams.settings import Settings
from streams.worker.item_followers import stats_follower, vector_follower
from streams.worker.metrics import PipelineStats
from streams.worker.model_updates import Follower
from streams.worker.serving import Serving


def start_followers(settings: Settings, serving: Serving, board: ItemBoard | None,
                    stats: PipelineStats, item_stats_topic: str | None,
                    loop: asyncio.AbstractEventLoop) -> list[threading.Thread]:  # fmt: skip
    followers: list[threading.Thread] = [Follower(settings, serving, loop)]
    if settings.item_learning:
        followers.append(vector_follower(settings, serving, loop))
    if board is not None and item_stats_topic is not None:
        followers.append(stats_follower(settings, board, stats, item_stats_topic, loop))
    for follower in followers:
        follower.start()
    return followers
