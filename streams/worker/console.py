"""The worker's web console: ``/console/``, a page a person opens in a browser beside the JSON
views it reads.

The page (console.html, beside this module) is static: no data is in it, so it is served without
the bearer token, and a browser, which cannot add an ``Authorization`` header to an address
typed in, can open it. Everything it shows comes from the worker's own views (``/stats/``,
``/users/{id}/...``, ``/items/{id}/...``), which ask for the token when
``STREAMREC_API_TOKEN`` is set: the page asks the person for it, keeps it for the browser tab
(sessionStorage) and sends it with each request; a wrong one gets 401 and the page shows no data.
Any worker serves it, and its user and item views forward to the owner as the JSON views do.
"""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING

from streams.settings_names import CONSOLE_PATH

if TYPE_CHECKING:
    import faust


def console_page() -> str:
    """The console's HTML, as installed beside this module."""
    return files("streams.worker").joinpath("console.html").read_text(encoding="utf-8")


def register_console(app: faust.App) -> None:
    """Serve the console at :data:`CONSOLE_PATH` on ``app``'s web port."""
    page = console_page()

    @app.page(CONSOLE_PATH)
    async def console(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
        return web.html(page, headers={"Cache-Control": "no-store"})
