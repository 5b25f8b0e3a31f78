"""The names and addresses the settings imply: the topics the events topic fans out to, the
broker as Faust spells it, and the URL other workers reach this one at.

Apart from streams/settings.py because they are derived, not set: :class:`Settings` mixes them
in, so ``settings.dlq_topic`` reads as before, and the settings module keeps to what a user sets
and how it is checked. Topic names persist as topics on the broker: change them only with a
migration (STYLE: names that persist are API).
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

CONSOLE_PATH = "/console/"  # every worker's web console (streams/worker/console.py)


class DerivedNames:
    """Properties over the fields of :class:`streams.settings.Settings`, which mixes this in."""

    if TYPE_CHECKING:  # declared by Settings; annotated here only for type checkers
        events_topic: str
        bootstrap: str
        web_host: str
        web_port: int
        advertised_host: str | None

    @property
    def dlq_topic(self) -> str:
        return f"{self.events_topic}.dlq"

    @property
    def item_events_topic(self) -> str:
        """The events again, keyed (so partitioned) by item, for the item statistics."""
        return f"{self.events_topic}.by-item"

    @property
    def item_vectors_topic(self) -> str:
        """Item vectors learned online, keyed by item (compacted), which every worker follows."""
        return f"{self.events_topic}.item-vectors"

    @property
    def items_topic(self) -> str:
        """The item catalog (core/items.py), keyed by item id and compacted: each item's newest
        record, a tombstone retiring one."""
        return f"{self.events_topic}.items"

    @property
    def content_topic(self) -> str:
        """The catalog items' content vectors (models/content.py), keyed by item and compacted:
        written by ``streamrec catalog``, followed by every worker."""
        return f"{self.events_topic}.content"

    @property
    def canonical_url(self) -> str:
        host = self.advertised_host or (
            socket.gethostname() if self.web_host in ("0.0.0.0", "::") else self.web_host
        )
        return f"http://{host}:{self.web_port}"

    @property
    def console_url(self) -> str:
        """The worker's web console, at the address other workers reach it at."""
        return f"{self.canonical_url}{CONSOLE_PATH}"

    @property
    def broker_url(self) -> str:
        """Faust wants ``kafka://host:port;host:port``."""
        return ";".join(f"kafka://{host}" for host in self.bootstrap.split(","))
