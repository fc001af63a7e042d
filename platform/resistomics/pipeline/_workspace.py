"""The workspace, re-exported where the pipeline's modules have always found it."""

from resistomics.publishing import Workspace

__all__ = ["Workspace"]
