"""Text files as every reader opens them: sniffed, decoded, bounded and row-checked.

Readers parse text with pandas or :mod:`csv`, which turn what is not text (a workbook,
UTF-16, binary data), a line of 50 MB or a row with a missing field into tracebacks,
exhausted memory or silently padded rows. :func:`open_checked_text` puts a
:class:`CheckedText` stream between the file and the parser that refuses all of those
with one :class:`~resistomics.errors.InputError` naming the file and the line, before
the parser sees the bytes:

- ``text-encoding``: the bytes are not UTF-8 text; the message says what they look
  like (xlsx workbook, UTF-16, latin-1, HDF5, binary) and how to convert them;
- ``line-length``: a line longer than ``max_line_chars`` (read in bounded pieces,
  so a file that is one huge line never sits in memory whole);
- ``field-count``: once told the delimiter and the number of fields (the header's),
  every row must have exactly that many: a cut (truncated) last line or a row with an
  extra tab is refused, never padded or dropped;
- ``field-length``: a field longer than ``max_field_chars`` (checked on rows once the
  delimiter is known, only on lines longer than the limit, so at no cost otherwise);
- ``gzip-ratio`` / ``inflated-size``: a compressed stream that inflates past
  ``max_inflation_ratio`` times its compressed size (once past ``inflation_floor_bytes``)
  or past ``max_inflated_bytes`` (a gzip bomb), counted as it is read;
- ``file-type``: a FIFO, socket or device (opened without blocking, never read);
- ``gzip-integrity``: a damaged or truncated compressed stream.

The bounds are the :class:`~resistomics.config.InputLimits` in effect
(:func:`input_limits` sets them for a block of code, e.g. one ingest; the defaults
otherwise).

Line endings LF, CRLF and CR all read as ``"\\n"``; a UTF-8 byte-order mark is dropped.
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import gzip
import io
import os
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from resistomics.config import InputLimits
from resistomics.errors import InputError

__all__ = [
    "MAX_FIELD_CHARS",
    "MAX_LINE_CHARS",
    "CheckedText",
    "current_limits",
    "describe_content",
    "input_limits",
    "open_checked_text",
    "open_regular",
    "refuse_non_regular",
    "refuse_non_text",
]

# The default longest line a reader accepts (1 Mi characters). The widest real rows we
# know are a few tens of KiB (a VCF record with thousands of samples, a MAF row with 120
# annotation columns); a longer line means a file without line breaks or not text.
MAX_LINE_CHARS = InputLimits().max_line_chars
# The default longest single field (64 Ki characters).
MAX_FIELD_CHARS = InputLimits().max_field_chars

_DEFAULT_LIMITS = InputLimits()
_LIMITS: contextvars.ContextVar[InputLimits | None] = contextvars.ContextVar(
    "resistomics_input_limits", default=None
)


def current_limits() -> InputLimits:
    """The input limits in effect (see :func:`input_limits`)."""
    return _LIMITS.get() or _DEFAULT_LIMITS


@contextlib.contextmanager
def input_limits(limits: InputLimits) -> Iterator[InputLimits]:
    """Apply ``limits`` to every input opened in this block (this thread / task)."""
    token = _LIMITS.set(limits)
    try:
        yield limits
    finally:
        _LIMITS.reset(token)


def refuse_non_regular(path: str | Path, *, directory_ok: bool = False) -> os.stat_result:
    """Raise ``file-type`` unless ``path`` is a regular file (or a directory, if allowed);
    never opens it, so a FIFO cannot block the caller."""
    st = os.stat(path)
    if stat.S_ISREG(st.st_mode) or (directory_ok and stat.S_ISDIR(st.st_mode)):
        return st
    raise InputError(
        str(path),
        "file-type",
        "is not a regular file (a FIFO, socket or device); land a regular file",
    )


def open_regular(path: str | Path) -> IO[bytes]:
    """Open ``path`` for reading if it is a regular file (``file-type`` otherwise).

    Opened with ``O_NONBLOCK`` and checked on the open descriptor: a FIFO swapped in
    after a check is refused too, instead of blocking until a writer appears.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InputError(
                str(path),
                "file-type",
                "is not a regular file (a FIFO, socket or device); land a regular file",
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


# How much of a file is inspected to tell what it is.
SNIFF_BYTES = 1 << 16
_CHUNK_BYTES = 1 << 16
_PIECE_BYTES = 1 << 14  # compressed bytes handed to the decompressor at a time

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_OLE_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")  # legacy .xls


def _head(path: Path, n: int = SNIFF_BYTES) -> bytes:
    """The first ``n`` bytes of the file's content (decompressed when gzip)."""
    with open_regular(path) as f:
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
    if not p.is_file():
        return "not a regular file (a FIFO, socket or device)"
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
    with open_regular(path) as f:
        return f.read(2) == _GZIP_MAGIC


def open_checked_text(path: str | Path, *, gz_name_must_be_gzip: bool = True) -> CheckedText:
    """Open a plain or gzip text file for parsing, refusing what is not text.

    A name ending in ``.gz`` must hold gzip (rule ``gzip``): a plain file under a
    compressed name is a mix-up worth fixing, not something to guess around.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(str(path), "not-a-file", "is a directory, expected a text file")
    size = refuse_non_regular(path).st_size
    compressed = _compressed(path)
    if not compressed and gz_name_must_be_gzip and path.name.lower().endswith((".gz", ".bgz")):
        raise InputError(
            str(path),
            "gzip",
            "the name ends in .gz but the file is not gzip-compressed (plain text?): "
            "compress it (bgzip/gzip) or drop the .gz from the name",
        )
    refuse_non_text(path)
    plain = open_regular(path)
    if not compressed:
        return CheckedText(plain, path)
    counted = _SmallReads(plain)
    raw = cast(IO[bytes], gzip.GzipFile(fileobj=counted, mode="rb"))
    return CheckedText(raw, path, compressed_size=size, owned=counted)


class _SmallReads(io.RawIOBase):
    """A file read at most 16 KiB at a time: the decompressor above it then consumes
    compressed bytes as it inflates them, so ``tell()`` measures the ratio so far
    closely (gzip reads 128 KiB ahead, which a bomb inflates to 128 MiB)."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(_PIECE_BYTES if size < 0 else min(size, _PIECE_BYTES))

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()
        super().close()


class CheckedText(io.TextIOBase):
    """A read-only text stream over ``raw`` bytes that enforces the module's rules.

    ``line`` is the number of the last line handed out whole (1-based), so a reader
    can name the line a parser stopped at. Call :meth:`expect_fields` once the header
    says how many fields a row has; lines after it are then checked as they are read.
    """

    def __init__(
        self,
        raw: IO[bytes],
        path: Path,
        *,
        compressed_size: int | None = None,
        owned: io.IOBase | IO[bytes] | None = None,
    ) -> None:
        super().__init__()
        self._raw = raw
        self._owned = owned  # the file under a decompressing ``raw``, closed with it
        self.path = str(path)
        limits = current_limits()
        self.max_line = limits.max_line_chars
        self.max_field = limits.max_field_chars
        self._limits = limits
        self._compressed_size = compressed_size
        self._inflated = 0
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
        self._wide: frozenset[int] = frozenset()
        self._partial = ""  # the handed-out start of a line not yet complete

    # -- io.TextIOBase --------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()
        if self._owned is not None:
            self._owned.close()
        super().close()

    def read(self, size: int | None = -1) -> str:
        want = -1 if size is None else size
        # gather the pieces and join once (appending to one string is quadratic)
        pieces = [self._buf[self._pos :]]
        held = len(pieces[0])
        self._buf, self._pos = "", 0
        while not self._eof and (want < 0 or held < want):
            self._fill()
            pieces.append(self._buf)
            held += len(self._buf)
            self._buf = ""
        text = "".join(pieces)
        end = len(text) if want < 0 else min(len(text), want)
        out, self._buf = text[:end], text[end:]
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
            if self._sep is not None:
                if out.count(self._sep) != self._fields - 1:
                    self._check_row(out[:-1], self.line)
                if len(out) > self.max_field:
                    self.check_field_lengths(out[:-1].split(self._sep), line=self.line)
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

    def expect_fields(
        self,
        fields: int,
        sep: str,
        *,
        comment: str | None = None,
        wide: frozenset[int] = frozenset(),
    ) -> None:
        """From the next line on, every non-blank line not starting with ``comment``
        must have exactly ``fields`` fields separated by ``sep`` (no quoting), none
        longer than ``max_field_chars`` except those at the 0-based positions ``wide``
        (bounded by the line length only: a VCF's INFO)."""
        self._fields = fields
        self._sep = sep
        self._comment = comment
        self._wide = wide

    def check_field_lengths(self, fields: list[str], *, line: int) -> None:
        """Refuse (``field-length``) a field longer than ``max_field_chars``, e.g. of a
        header a reader split itself."""
        for k, value in enumerate(fields):
            if len(value) > self.max_field and k not in self._wide:
                raise InputError(
                    self.path,
                    "field-length",
                    f"field {k + 1} has {len(value):,} characters; the limit is "
                    f"{self.max_field:,} (RESISTOMICS_LIMITS__MAX_FIELD_CHARS)",
                    line=line,
                )

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
        self._check_lengths(text)  # an overlong line is named as such, before the ratio
        if self._compressed_size is not None:
            self._inflated += len(data)
            self._check_inflation()
        self._buf = self._buf[self._pos :] + text
        self._pos = 0

    def _check_inflation(self) -> None:
        # the ratio so far (compressed bytes consumed, not the file's size): a bomb is
        # refused once past the floor, however large the whole file
        limits, n = self._limits, self._inflated
        packed = max(self._owned.tell() if self._owned is not None else 0, 1)
        if n > limits.max_inflated_bytes:
            raise InputError(
                self.path,
                "inflated-size",
                f"the compressed file inflates to more than {limits.max_inflated_bytes:,} bytes "
                "(the limit, RESISTOMICS_LIMITS__MAX_INFLATED_BYTES)",
                line=self._filled_lines + 1,
            )
        if n > limits.inflation_floor_bytes and n > limits.max_inflation_ratio * packed:
            raise InputError(
                self.path,
                "gzip-ratio",
                f"{packed:,} compressed bytes inflated to more than {n:,} "
                f"({n / packed:,.0f}x; the limit is {limits.max_inflation_ratio:g}x past "
                f"{limits.inflation_floor_bytes:,} bytes): a gzip bomb? If the file is "
                "genuine, raise RESISTOMICS_LIMITS__MAX_INFLATION_RATIO",
                line=self._filled_lines + 1,
            )

    def _check_lengths(self, text: str) -> None:
        first = text.find("\n")
        if first < 0:
            self._open_len += len(text)
            if self._open_len > self.max_line:
                self._too_long()
            return
        if self._open_len + first > self.max_line:
            self._too_long()
        last = text.rfind("\n")
        if last - first > self.max_line:  # only then can a line in between be too long
            start = first + 1
            for k, piece in enumerate(text[start:last].split("\n"), start=1):
                if len(piece) > self.max_line:
                    self._filled_lines += k
                    self._too_long()
        self._filled_lines += text.count("\n")
        self._open_len = len(text) - last - 1
        if self._open_len > self.max_line:
            self._too_long()

    def _too_long(self) -> None:
        raise InputError(
            self.path,
            "line-length",
            f"a line is longer than {self.max_line:,} characters (the limit, "
            "RESISTOMICS_LIMITS__MAX_LINE_CHARS): is the file missing its line breaks, or "
            "not a text table?",
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
            # only a line longer than the field limit can hold a field longer than it
            if lines and max(map(len, lines)) > self.max_field:
                for k, row in enumerate(lines):
                    if len(row) > self.max_field and not (
                        self._comment is not None and row.startswith(self._comment)
                    ):
                        self.check_field_lengths(row.split(sep), line=self.line + k + 1)
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
        if last and len(row) > self.max_field:
            self.check_field_lengths(row.split(self._sep), line=line)
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
