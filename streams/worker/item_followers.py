"""The names streams/worker/app.py imports today, kept only until app.py starts its followers
with :func:`streams.worker.followers.start_followers` (rewritten elsewhere); delete then."""

from streams.worker.followers import stats_follower, vector_follower

__all__ = ["stats_follower", "vector_follower"]
