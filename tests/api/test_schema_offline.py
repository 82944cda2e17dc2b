"""`/schema` works offline: the page and every asset it references come from the server."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from litestar import Litestar
from litestar.testing import AsyncTestClient

from flashsale.api.schema_ui import ASSETS_DIR

REFERENCE = re.compile(r"""(?:src|href)\s*=\s*['"]([^'"]+)['"]""")
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)['"]?\s*\)""")
VENDORED = re.compile(r"^\| (\S+) \| ([0-9a-f]{64}) \|$", re.MULTILINE)


async def test_the_viewer_and_its_assets_come_from_the_server(
    client: AsyncTestClient[Litestar],
) -> None:
    page = await client.get("/schema")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "validatorUrl: null" in html, "no call to the public validator"
    references = REFERENCE.findall(html)
    assert len(references) >= 4, references  # CSS, bundle, preset, favicon
    expected = dict(VENDORED.findall((ASSETS_DIR / "VENDORED.md").read_text()))
    served = {}
    for reference in references:
        target = urljoin("http://testserver.local/schema", reference)
        assert urlsplit(target).netloc == "testserver.local", f"{reference} is elsewhere"
        asset = await client.get(urlsplit(target).path)
        assert asset.status_code == 200, (reference, asset.status_code)
        served[Path(urlsplit(target).path).name] = asset.content
        if reference.endswith(".css"):
            for inside in CSS_URL.findall(asset.text):
                assert inside.startswith("data:"), f"the CSS loads {inside}"
    assert {name: hashlib.sha256(body).hexdigest() for name, body in served.items()} == expected
    for path in ("/schema/openapi.json", "/schema/swagger"):
        assert (await client.get(path)).status_code == 200, path
    # the assets are not API operations
    document = (await client.get("/schema/openapi.json")).json()
    assert not [p for p in document["paths"] if p.startswith("/schema")]
