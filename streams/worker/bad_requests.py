"""A malformed HTTP request is the client's error: aiohttp answers it 4xx, and the worker's log
says so in one line instead of an ERROR with aiohttp's traceback.

aiohttp logs every request it cannot parse (a request line or header over its limits, bytes
that are not HTTP) through ``aiohttp.server`` with the parser's traceback, at ERROR, before it
answers 400. A probe sending such requests would fill the log with tracebacks that hide the
worker's own errors, so the filter below rewrites those records; a fault of ours (a 5xx) keeps
its traceback.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"


class BadRequestLine(logging.Filter):
    """One WARNING line for a request aiohttp refused as malformed, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500:
            record.msg = "bad request refused with %d: %s"
            record.args = (exc.code, str(exc.message)[:200])
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_bad_requests() -> None:
    """Install the filter on aiohttp's server logger, once."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, BadRequestLine) for f in logger.filters):
        logger.addFilter(BadRequestLine())
