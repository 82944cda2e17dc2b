"""The errors of the dev servers."""

from __future__ import annotations


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be found, started or stopped."""


class PortClashError(EmbeddedServerError):
    """The server exited because its port was taken between our probe and its bind."""
