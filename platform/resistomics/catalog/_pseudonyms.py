"""Pseudonymised subject IDs: a keyed hash at registration, the mapping kept apart.

With pseudonymisation on, a subject is registered as ``subj-<12 hex>``: the first 48
bits of HMAC-SHA-256 (RFC 2104) of its raw ID under a secret key. The raw ID never
reaches the catalog, so nothing derived from the catalog (Parquet partitions
``subject_id=<id>/``, AnnData ``obs``, results, artifacts, events, logs) carries it.

- **The key** is a file of 32 random bytes (hex), created with mode 0600 on first use
  and refused when others can read it or when it lies inside the data root or the
  landing zone (whoever holds the data must not hold the key). The same raw ID gives
  the same pseudonym under the same key, in every study; a study records the key's
  fingerprint (an HMAC of a fixed label, which reveals nothing of the key) and refuses
  registration under another key, which would split a patient in two.
- **The mapping** (pseudonym -> raw ID, with study and time) is a TSV file with mode
  0600, appended under a file lock, outside the data root as the key is. A file, not a
  catalog table: the catalog is readable by everyone who analyses the data (it is the
  data root's SQLite file by default), and a PostgreSQL schema apart would need grants
  the platform cannot check; a 0600 file next to the key has the same custodian as the
  key and can be backed up or destroyed with it. With the key alone one can only test a
  guessed raw ID; the mapping re-identifies, so it is kept as carefully.
- **Other fields** must not carry the raw ID: a sample ID (or treatment, batch, site,
  annotation) that contains its subject's raw ID is refused with the sheet's line and
  column, never the value. 48 bits make a collision among 10,000 subjects about one in
  five million; one is refused, not merged.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import hmac
import os
import re
import secrets
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from resistomics.catalog._samplesheet import SampleRow
from resistomics.errors import PrivacyError, SampleSheetError

__all__ = ["PSEUDONYM_PREFIX", "SubjectPseudonyms"]

PSEUDONYM_PREFIX = "subj-"
_HEX_DIGITS = 12  # 48 bits
_KEY_BYTES = 32
_SUBJECT_LABEL = b"resistomics-subject\x00"
_KEY_ID_LABEL = b"resistomics-key-id\x00"
_MAPPING_HEADER = ("pseudonym", "subject_id", "study", "recorded_at")
# Raw IDs shorter than this are matched as whole tokens only: "P1" inside "SP12" is
# a coincidence, "PT-7731" inside "PT-7731-base" is not.
_SUBSTRING_MIN = 4
_PSEUDONYM = re.compile(rf"{PSEUDONYM_PREFIX}[0-9a-f]{{{_HEX_DIGITS}}}")


def _inside(path: Path, roots: Iterable[Path]) -> Path | None:
    for root in roots:
        if path == root or root in path.parents:
            return root
    return None


def _private_file(path: Path, what: str) -> None:
    """Refuse a key or mapping file that anyone but its owner may read or write."""
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise PrivacyError(f"{what} {path}: not a regular file")
    if mode & 0o077:
        raise PrivacyError(
            f"{what} {path}: readable or writable by others (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {path}"
        )


def _mentions(raw: str, value: str) -> bool:
    raw_l, value_l = raw.casefold(), value.casefold()
    if len(raw) >= _SUBSTRING_MIN:
        return raw_l in value_l
    return raw_l in re.split(r"[^0-9a-z]+", value_l)


@dataclass(frozen=True)
class SubjectPseudonyms:
    """The keyed hash of subject IDs and the mapping file of one custodian.

    Build it with :meth:`open`; :meth:`pseudonymise` turns sample-sheet rows into rows
    whose ``subject_id`` is a pseudonym and records the mapping.
    """

    key_file: Path
    mapping_file: Path
    _key: bytes

    @classmethod
    def open(
        cls, key_file: str | Path, mapping_file: str | Path, *, data_paths: Sequence[Path] = ()
    ) -> SubjectPseudonyms:
        """Load the key (creating it, mode 0600, if the file does not exist).

        Parameters
        ----------
        key_file, mapping_file
            Where the key and the mapping live: both outside ``data_paths``.
        data_paths
            Local folders holding the data (data root, landing zone).

        Raises
        ------
        PrivacyError
            A file inside a data folder, readable by others, or not a key.
        """
        key_path = Path(key_file).expanduser().absolute()
        map_path = Path(mapping_file).expanduser().absolute()
        roots = [Path(p).expanduser().resolve() for p in data_paths]
        for what, p in (("key file", key_path), ("mapping file", map_path)):
            root = _inside(p.parent.resolve() / p.name, roots)
            if root is not None:
                raise PrivacyError(
                    f"{what} {p} is inside the data ({root}); keep it where the data's "
                    "readers cannot reach it (RESISTOMICS_PRIVACY__KEY_FILE, "
                    "RESISTOMICS_PRIVACY__MAPPING_FILE)"
                )
        key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(_KEY_BYTES) + "\n")
                f.flush()
                os.fsync(f.fileno())
        _private_file(key_path, "key file")
        text = key_path.read_text(encoding="ascii", errors="replace").strip()
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) < _KEY_BYTES:
            raise PrivacyError(
                f"key file {key_path}: not a key (expected {_KEY_BYTES} bytes as hex); "
                "give the file this platform created, or a path that does not exist yet"
            )
        return cls(key_file=key_path, mapping_file=map_path, _key=key)

    def __repr__(self) -> str:  # never the key
        return f"SubjectPseudonyms(key_file={str(self.key_file)!r}, key_id={self.key_id!r})"

    @property
    def key_id(self) -> str:
        """The key's fingerprint, recorded with a study (reveals nothing of the key)."""
        return hmac.new(self._key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]

    def pseudonym(self, subject_id: str) -> str:
        """``subj-`` and the first 48 bits of HMAC-SHA-256(key, subject ID), in hex."""
        digest = hmac.new(self._key, _SUBJECT_LABEL + subject_id.encode(), hashlib.sha256)
        return PSEUDONYM_PREFIX + digest.hexdigest()[:_HEX_DIGITS]

    @staticmethod
    def is_pseudonym(value: str) -> bool:
        return _PSEUDONYM.fullmatch(value) is not None

    def pseudonymise(self, study: str, rows: Sequence[SampleRow]) -> list[SampleRow]:
        """The rows with each ``subject_id`` replaced by its pseudonym; mapping recorded.

        Raises
        ------
        SampleSheetError
            Rule ``pseudonymise``: a subject ID that is a pseudonym already, another
            field of a row (sample ID, treatment, batch, site, an annotation) that
            contains a raw subject ID of the sheet, or a sheet without a ``subject_id``
            column (each sample would be its own subject, its ID
            the raw ID). The message names line and column, never the value.
        PrivacyError
            Two raw IDs with one pseudonym (a 48-bit collision), or a mapping file
            others can read.
        """
        for n, row in enumerate(rows, start=1):
            if self.is_pseudonym(row.subject_id):
                raise SampleSheetError(
                    row.sheet or "sample sheet",
                    "pseudonymise",
                    f"subject {row.subject_id!r} is a pseudonym already: the sheet must carry "
                    "the raw subject IDs (a sheet exported by `study show` would be hashed "
                    "twice, making new subjects)",
                    line=row.line,
                    column="subject_id",
                    row=None if row.line is not None else f"#{n}",
                )
        raws = sorted({r.subject_id for r in rows}, key=len, reverse=True)
        for n, row in enumerate(rows, start=1):
            fields = {
                "sample_id": row.sample_id,
                "treatment": row.treatment,
                "batch": row.batch,
                "site": row.site,
                **{k: v for k, v in row.annotations.items() if isinstance(v, str)},
            }
            for column, value in fields.items():
                if value is None or not any(_mentions(raw, value) for raw in raws):
                    continue
                own = column == "sample_id" and value == row.subject_id
                hint = (
                    "the sheet has no subject_id (or it equals sample_id): give each "
                    "sample its subject"
                    if own
                    else "with pseudonymised subjects no other field may carry a subject "
                    "ID: rename it in the sheet (and in the data files, for sample IDs)"
                )
                raise SampleSheetError(
                    row.sheet or "sample sheet",
                    "pseudonymise",
                    f"the value contains a raw subject ID ({hint}); value not shown",
                    line=row.line,
                    column=column,
                    row=None if row.line is not None else f"#{n}",
                )
        pseudonyms = {raw: self.pseudonym(raw) for raw in raws}
        if len(set(pseudonyms.values())) != len(pseudonyms):
            raise PrivacyError(
                f"study {study}: two subject IDs of the sheet share a pseudonym (a 48-bit "
                "collision); rename one of them"
            )
        self._record(study, pseudonyms)
        return [replace(r, subject_id=pseudonyms[r.subject_id]) for r in rows]

    def _record(self, study: str, pseudonyms: dict[str, str]) -> None:
        """Append the pairs not yet recorded for ``study``, under an exclusive lock."""
        self.mapping_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.mapping_file, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+", newline="", encoding="utf-8") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            _private_file(self.mapping_file, "mapping file")
            f.seek(0)
            known: dict[str, str] = {}
            recorded: set[tuple[str, str]] = set()
            rows = list(csv.reader(f, delimiter="\t"))
            for rec in rows[1:] if rows else []:
                if len(rec) >= 3:
                    known.setdefault(rec[0], rec[1])
                    recorded.add((rec[0], rec[2]))
            for raw, pseudonym in pseudonyms.items():
                if known.get(pseudonym, raw) != raw:
                    raise PrivacyError(
                        f"study {study}: a subject ID of the sheet has the pseudonym "
                        f"{pseudonym} of another subject in {self.mapping_file} (a 48-bit "
                        "collision); rename it"
                    )
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            if not rows:
                writer.writerow(_MAPPING_HEADER)
            now = datetime.now(UTC).isoformat(timespec="seconds")
            for raw, pseudonym in sorted(pseudonyms.items(), key=lambda kv: kv[1]):
                if (pseudonym, study) not in recorded:
                    writer.writerow((pseudonym, raw, study, now))
            f.flush()
            os.fsync(f.fileno())

    def mapping(self) -> dict[str, str]:
        """Pseudonym -> raw subject ID, from the mapping file (for the custodian)."""
        if not self.mapping_file.exists():
            return {}
        _private_file(self.mapping_file, "mapping file")
        with open(self.mapping_file, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        return {r[0]: r[1] for r in rows[1:] if len(r) >= 2}
