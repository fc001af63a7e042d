"""Genome coordinates shared by the modalities that place data on contigs (variants,
methylation, accessibility): the default contig names and the chrom-sizes file."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_CONTIGS", "read_chrom_sizes"]

_NAMES = [*(str(i) for i in range(1, 23)), "X", "Y", "MT", "M"]
#: Human (and mouse) nuclear and mitochondrial contigs, with and without ``chr``.
DEFAULT_CONTIGS: frozenset[str] = frozenset(_NAMES) | frozenset(f"chr{n}" for n in _NAMES)


def read_chrom_sizes(path: str | Path) -> dict[str, int]:
    """A chrom-sizes file (``contig<TAB>length`` per line, as UCSC's ``fetchChromSizes``
    and ``samtools faidx``'s first two columns), in file order.

    Raises
    ------
    InputError
        ``chrom-sizes`` for a line that is not a name and a positive length.
    """
    from resistomics._text_files import open_checked_text
    from resistomics.errors import InputError

    sizes: dict[str, int] = {}
    with open_checked_text(path) as f:
        for n, line in enumerate(f, start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) < 2 or not fields[1].isdigit() or int(fields[1]) <= 0:
                raise InputError(
                    str(path),
                    "chrom-sizes",
                    "expected 'contig<TAB>length' (a positive integer)",
                    line=n,
                )
            sizes[fields[0]] = int(fields[1])
    return sizes
