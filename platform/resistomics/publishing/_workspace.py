"""A workspace: settings plus the catalog and data root they point at."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from resistomics.catalog import Catalog, SubjectPseudonyms
from resistomics.config import Settings
from resistomics.errors import PrivacyError
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

    def pseudonyms(self) -> SubjectPseudonyms:
        """The keyed hash of subject IDs from ``settings.privacy`` (key created on first
        use), refused when the key or mapping file lies in the data root or landing zone.

        Raises
        ------
        PrivacyError
            No key file configured, or one that :meth:`SubjectPseudonyms.open` refuses.
        """
        privacy = self.settings.privacy
        if not privacy.key_file:
            raise PrivacyError(
                "pseudonymised subject IDs need a key file outside the data root: set "
                "RESISTOMICS_PRIVACY__KEY_FILE (created, mode 0600, on first use)"
            )
        data = [Path(self.settings.local_root)] if self.settings.is_local else []
        landing = self.settings.resolved_landing_zone
        if "://" not in landing or landing.startswith("file://"):
            data.append(Path(landing.removeprefix("file://")))
        mapping = privacy.resolved_mapping_file
        assert mapping is not None  # a key file gives a default mapping file
        return SubjectPseudonyms.open(privacy.key_file, mapping, data_paths=data)

    def close(self) -> None:
        self.catalog.close()
