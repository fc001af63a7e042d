"""Text files as every reader opens them: sniffed, decoded, bounded and row-checked.

Readers parse text with pandas or :mod:`csv`, which turn what is not text (a workbook,
UTF-16, binary data), a line of 50 MB or a row with a missing field into tracebacks,
exhausted memory or silently padded rows. :func:`open_checked_text` puts a
:class:`CheckedText` stream between the file and the parser that refuses all of those
with one :class:`~resistomics.errors.InputError` naming the file and the line, before
the parser sees the bytes:

- ``text-encoding``: the bytes are not UTF-8 text; the message says what they look
  like (xlsx workbook, UTF-16, latin-1, HDF5, binary) and how to convert them;
- ``line-length``: a line longer than :data:`MAX_LINE_CHARS` (read in bounded pieces,
  so a file that is one huge line never sits in memory whole);
- ``field-count``: once told the delimiter and the number of fields (the header's),
  every row must have exactly that many: a cut (truncated) last line or a row with an
  extra tab is refused, never padded or dropped;
- ``gzip-integrity``: a damaged or truncated compressed stream.

Line endings LF, CRLF and CR all read as ``"\\n"``; a UTF-8 byte-order mark is dropped.
"""

from __future__ import annotations

import codecs
import gzip
import io
import zlib
from pathlib import Path
from typing import IO, cast

from resistomics.errors import InputError

__all__ = [
    "MAX_FIELD_CHARS",
    "MAX_LINE_CHARS",
    "CheckedText",
    "describe_content",
    "open_checked_text",
    "refuse_non_text",
]

# The longest line a reader accepts (1 Mi characters). The widest real rows we know
# are a few tens of KiB (a VCF record with thousands of samples, a MAF row with 120
# annotation columns); a longer line means a file without line breaks or not text.
MAX_LINE_CHARS = 1 << 20
# The longest single field a sample sheet accepts (64 Ki characters).
MAX_FIELD_CHARS = 1 << 16
# How much of a file is inspected to tell what it is.
SNIFF_BYTES = 1 << 16
_CHUNK_BYTES = 1 << 16

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_OLE_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")  # legacy .xls


def _head(path: Path, n: int = SNIFF_BYTES) -> bytes:
    """The first ``n`` bytes of the file's content (decompressed when gzip)."""
    with open(path, "rb") as f:
        raw = f.read(n)
    if raw[:2] != _GZIP_MAGIC:
        return raw
    # decompress the start only: a truncated or damaged stream still shows its content
    # (the damage is reported where the reader reaches it, with its line)
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, n)
    except zlib.error:
        return b""


def _non_text(head: bytes) -> tuple[str, int] | None:
    """What ``head`` looks like if it is not UTF-8 text, with how to convert it, and the
    offset of the first byte that shows it."""
    if head.startswith(_ZIP_MAGIC):
        kind = (
            "an Excel workbook (.xlsx)"
            if b"xl/" in head or b"[Content_Types].xml" in head
            else "a ZIP archive"
        )
        return (
            f"the file is {kind}, not text: export the sheet as tab-separated text (.tsv) "
            "or unzip it",
            0,
        )
    if head.startswith(_OLE_MAGIC):
        return (
            "the file is a legacy Excel workbook (.xls), not text: export the sheet as "
            "tab-separated text (.tsv)",
            0,
        )
    if head.startswith(_HDF5_MAGIC):
        return (
            "the file is HDF5 (an .h5ad or .h5 file?), not text: give it a .h5ad name or "
            "--format h5ad",
            0,
        )
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or _utf16_without_bom(head):
        return (
            "the file is UTF-16 text: convert it to UTF-8, e.g. iconv -f UTF-16 -t UTF-8 "
            "in.tsv > out.tsv",
            0,
        )
    nul = head.find(b"\x00")
    if nul >= 0:
        return f"the file holds binary data (a NUL byte at byte {nul + 1}), not text", nul
    try:
        # the cut may split a character: drop up to 3 trailing bytes of an incomplete one
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        return _latin1_hint(head, exc.start), exc.start
    return None


def _utf16_without_bom(head: bytes) -> bool:
    sample = head[:4096]
    if len(sample) < 4:
        return False
    even, odd = sample[0::2], sample[1::2]
    return (odd.count(0) > 0.4 * len(odd) and even.count(0) == 0) or (
        even.count(0) > 0.4 * len(even) and odd.count(0) == 0
    )


def _latin1_hint(data: bytes, at: int) -> str:
    byte = data[at]
    return (
        f"byte 0x{byte:02x} is not UTF-8; the file looks latin-1/Windows-1252 encoded: "
        "convert it, e.g. iconv -f latin1 -t UTF-8 in.tsv > out.tsv"
    )


def refuse_non_text(path: str | Path) -> None:
    """Raise ``text-encoding`` if the start of the file is not UTF-8 text (see module)."""
    head = _head(Path(path))
    found = _non_text(head)
    if found is not None:
        why, at = found
        raise InputError(str(path), "text-encoding", why, line=head.count(b"\n", 0, at) + 1)


def describe_content(path: str | Path) -> str:
    """A few words saying what the file looks like, for a reader that was forced onto a
    file of another format (``--format``) and must say why it refuses it."""
    p = Path(path)
    if p.is_dir():
        names = sorted(c.name for c in p.iterdir())[:5]
        return f"a directory (holding {', '.join(names) or 'nothing'})"
    head = _head(p, 4096)
    packed = "gzip-compressed " if _compressed(p) else ""
    if not head:
        return f"an empty {packed}file"
    if head.startswith(_HDF5_MAGIC):
        return "an HDF5 file (h5ad)"
    if head.startswith(_ZIP_MAGIC):
        return "a ZIP archive (an xlsx workbook?)"
    if _non_text(head) is not None:
        return "binary data, not text"
    text = head.decode("utf-8", errors="replace")
    first = next((line for line in text.splitlines() if line.strip()), "")
    if text.startswith("%%MatrixMarket"):
        return f"a {packed}Matrix Market file (matrix.mtx of a 10x directory?)"
    if text.startswith("##fileformat=VCF"):
        return f"a {packed}VCF"
    body = next((line for line in text.splitlines() if line.strip() and line[0] != "#"), "")
    if "Tumor_Sample_Barcode" in body or "Hugo_Symbol" in body:
        return f"a {packed}MAF"
    for sep, name in (("\t", "tab"), (",", "comma")):
        if sep in first:
            return f"{packed}{name}-separated text"
    return f"{packed}text"


def _compressed(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def open_checked_text(path: str | Path, *, gz_name_must_be_gzip: bool = True) -> CheckedText:
    """Open a plain or gzip text file for parsing, refusing what is not text.

    A name ending in ``.gz`` must hold gzip (rule ``gzip``): a plain file under a
    compressed name is a mix-up worth fixing, not something to guess around.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(str(path), "not-a-file", "is a directory, expected a text file")
    compressed = _compressed(path)
    if not compressed and gz_name_must_be_gzip and path.name.lower().endswith((".gz", ".bgz")):
        raise InputError(
            str(path),
            "gzip",
            "the name ends in .gz but the file is not gzip-compressed (plain text?): "
            "compress it (bgzip/gzip) or drop the .gz from the name",
        )
    refuse_non_text(path)
    raw = cast(IO[bytes], gzip.open(path, "rb") if compressed else open(path, "rb"))  # noqa: SIM115
    return CheckedText(raw, path)


class CheckedText(io.TextIOBase):
    """A read-only text stream over ``raw`` bytes that enforces the module's rules.

    ``line`` is the number of the last line handed out whole (1-based), so a reader
    can name the line a parser stopped at. Call :meth:`expect_fields` once the header
    says how many fields a row has; lines after it are then checked as they are read.
    """

    def __init__(self, raw: IO[bytes], path: Path) -> None:
        super().__init__()
        self._raw = raw
        self.path = str(path)
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._buf = ""
        self._pos = 0  # where in _buf the next read starts
        self._eof = False
        self._pending_cr = False
        self._filled_lines = 0  # complete lines decoded so far
        self._open_len = 0  # characters of the decoded, not yet complete line
        self._raw_offset = 0
        # field checks run on text as it is handed out
        self.line = 0
        self._sep: str | None = None
        self._fields = 0
        self._comment: str | None = None
        self._partial = ""  # the handed-out start of a line not yet complete

    # -- io.TextIOBase --------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()
        super().close()

    def read(self, size: int | None = -1) -> str:
        want = -1 if size is None else size
        while not self._eof and (want < 0 or len(self._buf) - self._pos < want):
            self._fill()
        end = len(self._buf) if want < 0 else min(len(self._buf), self._pos + want)
        out = self._buf[self._pos : end]
        self._pos = end
        self._hand_out(out)
        return out

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        cut = self._buf.find("\n", self._pos)
        while cut < 0 and not self._eof:
            searched = len(self._buf) - self._pos
            self._fill()
            cut = self._buf.find("\n", self._pos + searched)
        end = len(self._buf) if cut < 0 else cut + 1
        if size is not None and 0 <= size < end - self._pos:
            end = self._pos + size
        out = self._buf[self._pos : end]
        self._pos = end
        if cut >= 0 and end == cut + 1 and not self._partial:
            # the common case, a whole line: checked without splitting
            self.line += 1
            if self._sep is not None and out.count(self._sep) != self._fields - 1:
                self._check_row(out[:-1], self.line)
        else:
            self._hand_out(out)
        return out

    def __iter__(self) -> CheckedText:  # type: ignore[override]
        return self

    def __next__(self) -> str:  # type: ignore[override]
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    # -- rules ----------------------------------------------------------------------------

    def expect_fields(self, fields: int, sep: str, *, comment: str | None = None) -> None:
        """From the next line on, every non-blank line not starting with ``comment``
        must have exactly ``fields`` fields separated by ``sep`` (no quoting)."""
        self._fields = fields
        self._sep = sep
        self._comment = comment

    def _fill(self) -> None:
        try:
            data = self._raw.read(_CHUNK_BYTES)
        except (EOFError, OSError, zlib.error) as exc:
            raise InputError(
                self.path,
                "gzip-integrity",
                f"the compressed stream is damaged or truncated ({exc or type(exc).__name__}); "
                "re-export or re-copy the file",
                line=self._filled_lines + 1,
            ) from None
        try:
            text = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            before = data[: max(exc.start, 0)]
            line = self._filled_lines + before.count(b"\n") + 1
            raise InputError(
                self.path, "text-encoding", _latin1_hint(data, exc.start), line=line
            ) from None
        self._raw_offset += len(data)
        if not data:
            self._eof = True
        if self._pending_cr:
            text = "\r" + text
            self._pending_cr = False
        if text.endswith("\r") and not self._eof:
            text, self._pending_cr = text[:-1], True
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if "\x00" in text:
            at = text.index("\x00")
            raise InputError(
                self.path,
                "text-encoding",
                "the file holds a NUL byte, so it is binary data or damaged, not text",
                line=self._filled_lines + text.count("\n", 0, at) + 1,
            )
        self._check_lengths(text)
        self._buf = self._buf[self._pos :] + text
        self._pos = 0

    def _check_lengths(self, text: str) -> None:
        first = text.find("\n")
        if first < 0:
            self._open_len += len(text)
            if self._open_len > MAX_LINE_CHARS:
                self._too_long()
            return
        if self._open_len + first > MAX_LINE_CHARS:
            self._too_long()
        last = text.rfind("\n")
        if last - first > MAX_LINE_CHARS:  # only then can a line in between be too long
            start = first + 1
            for k, piece in enumerate(text[start:last].split("\n"), start=1):
                if len(piece) > MAX_LINE_CHARS:
                    self._filled_lines += k
                    self._too_long()
        self._filled_lines += text.count("\n")
        self._open_len = len(text) - last - 1
        if self._open_len > MAX_LINE_CHARS:
            self._too_long()

    def _too_long(self) -> None:
        raise InputError(
            self.path,
            "line-length",
            f"a line is longer than {MAX_LINE_CHARS:,} characters (the limit): "
            "is the file missing its line breaks, or not a text table?",
            line=self._filled_lines + 1,
        )

    def _hand_out(self, text: str) -> None:
        if not text:
            if self._eof and self._partial:  # the last line has no line break
                self._check_row(self._partial, self.line + 1, last=True)
                self._partial = ""
                self.line += 1
            return
        lines = text.split("\n")
        lines[0] = self._partial + lines[0]
        self._partial = lines.pop()
        if self._sep is not None:
            sep, seps = self._sep, self._fields - 1
            # count in one pass; only rows that differ (blank, comment or bad) are looked at
            counts = [row.count(sep) for row in lines]
            if counts.count(seps) != len(counts):
                for k, n in enumerate(counts):
                    if n != seps:
                        self._check_row(lines[k], self.line + k + 1)
        self.line += len(lines)
        if self._partial and self._eof and self._pos >= len(self._buf):
            self._check_row(self._partial, self.line + 1, last=True)
            self._partial = ""
            self.line += 1

    def _check_row(self, row: str, line: int, *, last: bool = False) -> None:
        """Refuse ``row`` (on ``line``) unless it has the expected fields, is blank or a
        comment. ``last``: the file's last line, which has no line break."""
        if self._sep is None or not row.strip():
            return
        if self._comment is not None and row.startswith(self._comment):
            return
        found = row.count(self._sep) + 1
        if found != self._fields:
            cut = " (a cut or truncated file?)" if last and found < self._fields else ""
            raise InputError(
                self.path,
                "field-count",
                f"expected {self._fields} {_sep_name(self._sep)}-separated fields like the "
                f"header, found {found}{cut}",
                line=line,
            )


def _sep_name(sep: str) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon"}.get(sep, repr(sep))
