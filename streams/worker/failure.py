"""How a worker stops when a batch fails in a way no step could confine: at once, committing
nothing, so a restart reads the batch again."""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

from streams.kafka_edge.transactions import Fenced

log = logging.getLogger(__name__)

EXIT_UNCONFINED_FAILURE = 70  # EX_SOFTWARE: restart me; the batch will be read again
EXIT_FENCED = 75  # EX_TEMPFAIL: another worker owns my partitions now (I was a zombie); restart me


def stop_without_commit(exc: BaseException) -> NoReturn:
    """Exit the process at once, committing nothing.

    Letting the exception out would not do: Faust would crash the app, and its shutdown
    commits; an agent's supervisor would restart it and the next commit move past events that
    were never applied or dead-lettered. An exit leaves the committed offset at the last batch
    that completed, so a restart reads this one again (state is exactly-once, records
    at-least-once).
    """
    fenced = isinstance(exc, Fenced)
    log.critical("stopping without commit: %s: %s", type(exc).__name__, exc,
                 exc_info=None if fenced else exc)  # fmt: skip
    logging.shutdown()
    sys.stderr.flush()
    os._exit(EXIT_FENCED if fenced else EXIT_UNCONFINED_FAILURE)
