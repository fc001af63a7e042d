"""A workspace: settings plus the catalog and data root they point at."""

from __future__ import annotations

from dataclasses import dataclass

from resistomics.catalog import Catalog
from resistomics.config import Settings
from resistomics.storage import DataRoot

__all__ = ["Workspace"]


@dataclass
class Workspace:
    """Everything a pipeline step needs to find data: built once at an entry point."""

    settings: Settings
    catalog: Catalog
    root: DataRoot

    @classmethod
    def open(cls, settings: Settings) -> Workspace:
        root = DataRoot(settings.data_root, dict(settings.storage_options))
        if settings.is_local:
            settings.local_root.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(settings.resolved_catalog_url)
        landing = DataRoot(settings.resolved_landing_zone, dict(settings.storage_options))
        del landing  # creating it makes the local landing folder exist
        return cls(settings=settings, catalog=catalog, root=root)

    @property
    def landing(self) -> DataRoot:
        return DataRoot(self.settings.resolved_landing_zone, dict(self.settings.storage_options))

    def close(self) -> None:
        self.catalog.close()
