"""Alembic migrations of the catalog schema (shipped in the package; see ``_schema``).

Write a new revision with ``alembic -c platform/resistomics/catalog/_migrations/alembic.ini
revision -m "..."`` from the repository root, then fill in ``upgrade``/``downgrade`` by
hand (autogenerate compares against ``_models``: ``alembic ... check`` must say no changes).
"""
