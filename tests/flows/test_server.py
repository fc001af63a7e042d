"""The local Prefect server of ``resistomics serve`` / ``demo`` (flows/_server.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from flows._server import free_port, prefect_server

pytestmark = pytest.mark.integration


def test_ui_is_told_the_api_on_the_servers_own_port(tmp_path: Path) -> None:
    port = free_port()
    with prefect_server(tmp_path / "prefect", port=port) as server:
        assert server.api_url == f"http://127.0.0.1:{port}/api"
        settings = httpx.get(f"{server.url}/ui-settings", timeout=10).json()
        # Without PREFECT_SERVER_UI_API_URL this is http://127.0.0.1:4200/api.
        assert settings["api_url"] == server.api_url
    assert (tmp_path / "prefect" / "prefect.db").exists()
