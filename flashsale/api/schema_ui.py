"""``/schema``: the OpenAPI viewer (Swagger UI) served with its assets from the package.

Litestar's render plugins load their JavaScript, CSS and favicon from a CDN, so
the page is blank offline. Here the viewer's files (``api/static/swagger-ui/``,
vendored from npm, see VENDORED.md there) are served by the app itself under
``/schema/assets/``, the page points at them, and Swagger UI's online validator
badge is switched off (it would call out). The OpenAPI document stays at
``/schema/openapi.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request, Router
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

SWAGGER_UI_VERSION = "5.35.0"
ASSETS_PATH = "/schema/assets"
ASSETS_DIR = Path(__file__).resolve().parent / "static" / "swagger-ui"


class OfflineSwagger(SwaggerRenderPlugin):
    """Swagger UI from our own assets; no request leaves for another host."""

    def __init__(self) -> None:
        super().__init__(
            version=SWAGGER_UI_VERSION,
            js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
            path=["/", "/swagger"],
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        page = super().render(request, openapi_schema)
        # Swagger UI's default validatorUrl is a public service: never call it
        return page.replace(b"deepLinking: true,", b"deepLinking: true,\n validatorUrl: null,", 1)


def schema_assets() -> Router:
    """The router serving the viewer's files (kept out of the OpenAPI document)."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[ASSETS_DIR],
        include_in_schema=False,
        name="schema_assets",
    )
