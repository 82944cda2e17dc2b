"""``create_app()``, the Litestar application (servers: ``flashsale.api.app:create_app``)."""

from __future__ import annotations

from litestar import Litestar

from flashsale.api.config import ApiSettings
from flashsale.api.plugin import FlashsalePlugin
from flashsale.engine.engine import Engine
from flashsale.engine.settings import Settings


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    api_settings: ApiSettings | None = None,
) -> Litestar:
    """The API; configuration from the environment unless given.

    ``engine``: use this engine (tests) instead of opening one from
    ``FLASHSALE_REDIS_URL``; the caller keeps ownership and closes it.
    """
    return Litestar(
        plugins=[
            FlashsalePlugin(
                settings or Settings.from_env(),
                api_settings or ApiSettings.from_env(),
                engine=engine,
            )
        ],
        debug=False,
    )
