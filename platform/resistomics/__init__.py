"""resistomics: multiomic cancer treatment-resistance platform.

Import name of the library under ``platform/resistomics``. The library never imports
Prefect; orchestration lives in ``flows/``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("resistomics")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
