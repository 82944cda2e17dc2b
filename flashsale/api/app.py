"""``create_app()``, the Litestar application (servers: ``flashsale.api.app:create_app``)."""

from __future__ import annotations

from litestar import Litestar

from flashsale.api.plugin import FlashsalePlugin
from flashsale.engine.engine import Engine
from flashsale.settings import Settings


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> Litestar:
    """The API; configuration from the environment unless given.

    ``engine``: use this engine (tests) instead of opening one from
    ``FLASHSALE_REDIS_URL``; the caller keeps ownership and closes it.
    """
    settings = settings or Settings.from_env()
    return Litestar(
        plugins=[FlashsalePlugin(settings, engine=engine)],
        # Here, not in the plugin: Litestar 2.25 reads this limit from its constructor
        # argument only (a plugin's AppConfig change does not reach the router).
        request_max_body_size=settings.api.max_body_bytes,
        debug=False,
    )
