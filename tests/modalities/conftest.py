"""Fixtures of the modality tests: the toy plugin installed through a real entry point."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import toy_modality
from resistomics.modalities import refresh


@pytest.fixture
def toy_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The toy modality installed as a distribution with a ``resistomics.modalities``
    entry point (a ``.dist-info`` folder on ``sys.path``, found by importlib.metadata);
    the registry is reloaded before and after. Yields the site folder."""
    site = toy_modality.install(tmp_path_factory.mktemp("toy-site"))
    sys.path.insert(0, str(site))
    refresh()
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        refresh()
