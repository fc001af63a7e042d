"""Bad-file builders: a good text file in, a broken copy out, with what a reader must say.

Every text reader (any modality) must turn each of these into one ``InputError`` naming
the file, the rule and the line; none may publish the data. A builder takes the path of
a *good* input file and the path to write, writes the broken copy (gzip in, gzip out:
a ``.gz`` file is decompressed, broken and compressed again) and returns a
:class:`BadFile` saying which rule the reader must name and on which line::

    from modalities.bad_files import TEXT_DEFECTS

    for name, build in TEXT_DEFECTS.items():
        bad = build(good_path, tmp_path / name / good_path.name)
        with pytest.raises(InputError) as err:
            read_everything(bad.path)
        assert err.value.rule == bad.rule
        if bad.line is not None:
            assert err.value.location.line == bad.line

``data_line`` picks the line a row defect goes on: the middle line that is not a
comment (``#``, ``%``) or the first line (a header); override it with ``line=``.
"""

from __future__ import annotations

import gzip
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from resistomics._text_files import MAX_LINE_CHARS

__all__ = [
    "TEXT_DEFECTS",
    "BadFile",
    "as_latin1",
    "as_utf16",
    "data_line",
    "extra_field",
    "garbage_bytes",
    "long_line",
    "missing_field",
    "truncated_mid_line",
    "with_nul",
    "xlsx_like",
]


@dataclass(frozen=True)
class BadFile:
    """A broken copy of a good file, the rule a reader must name and the line (1-based)
    it must point at (``None`` where the place is not a line, e.g. a workbook)."""

    path: Path
    rule: str
    line: int | None
    what: str


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8")


def _write(out: Path, data: bytes, *, like: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    if like.read_bytes()[:2] == b"\x1f\x8b":
        data = gzip.compress(data, mtime=0)
    out.write_bytes(data)
    return out


def data_line(text: str, *, sep: str = "\t") -> int:
    """The 1-based number of the middle data line: not the first non-comment line (the
    header) nor a comment; the one after the header if there are few."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    numbers = [i for i, t in enumerate(lines, start=1) if t.strip() and t[0] not in "#%"]
    rows = numbers[1:] or numbers
    return rows[len(rows) // 2]


def _lines(text: str) -> tuple[list[str], bool]:
    ends = text.endswith("\n")
    lines = text.split("\n")
    if ends:
        lines.pop()
    return lines, ends


def _join(lines: list[str], ends: bool) -> bytes:
    return ("\n".join(lines) + ("\n" if ends else "")).encode("utf-8")


def garbage_bytes(good: Path, out: Path) -> BadFile:
    """Random binary data (NUL bytes included) under the good file's name."""
    rng = random.Random(7)
    data = bytes(rng.randrange(256) for _ in range(4096)) + b"\x00\x00"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data if not out.name.endswith(".gz") else gzip.compress(data, mtime=0))
    return BadFile(out, "text-encoding", 1, "binary garbage")


def as_utf16(good: Path, out: Path) -> BadFile:
    """The same text encoded UTF-16 with a byte-order mark (what Excel's "Unicode
    text" export writes)."""
    return BadFile(
        _write(out, _read_text(good).encode("utf-16"), like=good), "text-encoding", 1, "UTF-16"
    )


def as_latin1(good: Path, out: Path, *, line: int | None = None) -> BadFile:
    """The text as latin-1 with an ``é`` (byte 0xe9) put into one data line."""
    lines, ends = _lines(_read_text(good))
    n = line or data_line(_read_text(good))
    row = lines[n - 1]
    lines[n - 1] = row.replace("\t", "é\t", 1) if "\t" in row else row + "é"
    data = ("\n".join(lines) + ("\n" if ends else "")).encode("latin-1")
    return BadFile(_write(out, data, like=good), "text-encoding", n, "latin-1 byte")


def xlsx_like(good: Path, out: Path) -> BadFile:
    """A real ZIP holding the parts of an Excel workbook (what "Save as .xlsx" gives,
    then renamed .tsv), the good text inside a sheet."""
    out.parent.mkdir(parents=True, exist_ok=True)
    target = out if not out.name.endswith(".gz") else out.with_suffix("")
    with zipfile.ZipFile(target, "w") as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        z.writestr("xl/workbook.xml", "<workbook/>")
        z.writestr("xl/worksheets/sheet1.xml", f"<sheetData>{_read_text(good)}</sheetData>")
    if target != out:
        out.write_bytes(gzip.compress(target.read_bytes(), mtime=0))
        target.unlink()
    return BadFile(out, "text-encoding", 1, "xlsx workbook")


def truncated_mid_line(good: Path, out: Path) -> BadFile:
    """The file cut in the middle of its last line, as ``kill -9`` during a copy leaves
    it: the last row has fewer fields than the header."""
    lines, _ = _lines(_read_text(good))
    last = lines[-1]
    cut = last.find("\t") + 1 if "\t" in last else max(1, len(last) // 2)
    lines[-1] = last[:cut].rstrip("\t") if cut else last[: len(last) // 2]
    return BadFile(_write(out, _join(lines, False), like=good), "field-count", len(lines), "cut")


def missing_field(good: Path, out: Path, *, line: int | None = None, sep: str = "\t") -> BadFile:
    """One data row with its last field removed."""
    text = _read_text(good)
    lines, ends = _lines(text)
    n = line or data_line(text)
    lines[n - 1] = lines[n - 1].rsplit(sep, 1)[0]
    return BadFile(_write(out, _join(lines, ends), like=good), "field-count", n, "short row")


def extra_field(good: Path, out: Path, *, line: int | None = None, sep: str = "\t") -> BadFile:
    """One data row with one field too many (a stray tab)."""
    text = _read_text(good)
    lines, ends = _lines(text)
    n = line or data_line(text)
    lines[n - 1] = lines[n - 1] + sep + "1"
    return BadFile(_write(out, _join(lines, ends), like=good), "field-count", n, "long row")


def long_line(good: Path, out: Path, *, line: int | None = None) -> BadFile:
    """One data line padded past ``MAX_LINE_CHARS`` (what a file without line breaks,
    or a 50 MB single line, looks like to a reader)."""
    text = _read_text(good)
    lines, ends = _lines(text)
    n = line or data_line(text)
    lines[n - 1] = lines[n - 1] + "x" * (MAX_LINE_CHARS + 10)
    return BadFile(_write(out, _join(lines, ends), like=good), "line-length", n, "long line")


def with_nul(good: Path, out: Path, *, line: int | None = None) -> BadFile:
    """A NUL byte in one data line (a damaged copy)."""
    text = _read_text(good)
    lines, ends = _lines(text)
    n = line or data_line(text)
    lines[n - 1] = lines[n - 1][:2] + "\x00" + lines[n - 1][2:]
    return BadFile(_write(out, _join(lines, ends), like=good), "text-encoding", n, "NUL byte")


# Every builder with the default place, by name (the contract suite's parameter list).
TEXT_DEFECTS: dict[str, Callable[[Path, Path], BadFile]] = {
    "garbage": garbage_bytes,
    "utf16": as_utf16,
    "latin1": as_latin1,
    "xlsx": xlsx_like,
    "truncated": truncated_mid_line,
    "missing-field": missing_field,
    "extra-field": extra_field,
    "long-line": long_line,
    "nul": with_nul,
}
