"""Sort a stream longer than memory: sorted runs of at most ``run_size`` items spilled to
temporary files, then a k-way :func:`heapq.merge`, so memory holds one run, not the stream.

Stable, like :func:`sorted`: runs are cut in input order, each is sorted stably, and
``heapq.merge`` takes ties from the earlier run first. Items are tuples of JSON values (an
:class:`~core.events.Event` is one), written one orjson line each and rebuilt by ``restore``.
"""

from __future__ import annotations

import heapq
import itertools
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import orjson

T = TypeVar("T", bound=tuple)
_END = object()
MAX_FAN_IN = 128  # runs merged at once: one open file each, well under the usual fd limit


def _spill(items: Iterable[tuple], directory: Path, number: int) -> Path:
    path = directory / f"run-{number:06d}"
    with open(path, "wb") as out:
        out.writelines(orjson.dumps(tuple(item)) + b"\n" for item in items)
    return path


def _read(path: Path, restore: Callable[..., T]) -> Iterator[T]:
    with open(path, "rb") as lines:
        for line in lines:
            yield restore(*orjson.loads(line))
    path.unlink()


def external_sorted(
    items: Iterable[T],
    key: Callable[[T], object],
    run_size: int,
    restore: Callable[..., T],
    fan_in: int = MAX_FAN_IN,
) -> Iterator[T]:
    """``sorted(items, key=key)``, yielded lazily with at most ``run_size`` items in memory
    (plus one per run being merged). A stream that fits one run is never written to disk."""
    if run_size < 1 or fan_in < 2:
        raise ValueError("run_size must be at least 1 and fan_in at least 2")
    source = iter(items)
    first = sorted(itertools.islice(source, run_size), key=key)
    more = next(source, _END)
    if more is _END:  # it fits one run
        yield from first
        return
    source = itertools.chain([more], source)
    with tempfile.TemporaryDirectory(prefix="streamrec-sort-") as tmp:
        directory, count = Path(tmp), itertools.count()
        runs = [_spill(first, directory, next(count))]
        del first
        while run := sorted(itertools.islice(source, run_size), key=key):
            runs.append(_spill(run, directory, next(count)))
            del run
        while len(runs) > fan_in:  # merge consecutive groups, so ties keep input order
            runs = [
                _spill(heapq.merge(*(_read(r, restore) for r in group), key=key),
                       directory, next(count))
                for group in (runs[i:i + fan_in] for i in range(0, len(runs), fan_in))
            ]  # fmt: skip
        yield from heapq.merge(*(_read(r, restore) for r in runs), key=key)
