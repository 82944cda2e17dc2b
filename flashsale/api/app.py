"""``create_app()``, the Litestar application; ``served_app()`` is what the servers load
(``flashsale.api.app:served_app``): the same application, with the process's logging set up."""

from __future__ import annotations

from litestar import Litestar

from flashsale import logs
from flashsale.api.access import access_log
from flashsale.api.allow import exact_allow
from flashsale.api.gcsettle import settle
from flashsale.api.plugin import FlashsalePlugin
from flashsale.api.text import CheckedRequest, text_guard
from flashsale.engine.engine import Engine
from flashsale.settings import Settings


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> Litestar:
    """The API; configuration from the environment unless given.

    ``engine``: use this engine (tests) instead of opening one from
    ``FLASHSALE_REDIS_URL``; the caller keeps ownership and closes it.
    """
    settings = settings or Settings.from_env()
    app = Litestar(
        plugins=[FlashsalePlugin(settings, engine=engine)],
        # Here, not in the plugin: Litestar 2.25 reads this limit from its constructor
        # argument only (a plugin's AppConfig change does not reach the router).
        request_max_body_size=settings.api.max_body_bytes,
        request_class=CheckedRequest,  # bodies with text PostgreSQL can't store: 422
        debug=False,
        logging_config=None,  # the process sets its logging up (flashsale/logs.py), not Litestar
    )
    # Around the whole application, routing included (Litestar's middleware runs per
    # route): 404s and 405s get their access line and request id too.
    # text_guard: a path, query or header PostgreSQL can't store is refused before routing;
    # exact_allow: every 405 names the resource's methods in Allow.
    app.asgi_handler = access_log(text_guard(exact_allow(app, app.asgi_handler)))
    return app


def served_app() -> Litestar:
    """The factory each server worker calls: logs in the one format, then the API, whose
    long-lived objects leave the garbage collector's sight once it has started."""
    settings = Settings.from_env()
    logs.configure("api", settings.log_format)
    app = create_app(settings)
    app.on_startup.append(settle)  # after the lifespan's pools: see api/gcsettle.py
    return app
