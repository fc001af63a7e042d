"""A lost COMMIT acknowledgement on PostgreSQL: the publish's retry is a success.

A small TCP proxy between the catalog and PostgreSQL reads the wire protocol
(https://www.postgresql.org/docs/current/protocol-message-formats.html): in a
transaction that ran a chosen statement (the publish's ``UPDATE versions ...
published_at``, or the ``DELETE`` of a version that an identical published one wins
over), it lets the client's ``COMMIT`` through to the server, reads the server's
``CommandComplete COMMIT`` and, instead of forwarding it, closes both connections. The
server has committed; the client sees a dropped connection and the catalog retries the
whole transaction (``_retried``) on a new one. Runs when
``RESISTOMICS_TEST_POSTGRES_URL`` points at a server (see ``.ci/start-postgres``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from resistomics.catalog import Catalog, SampleRow, VersionInfo, VersionStatus
from resistomics.errors import CatalogError

URL = os.environ.get("RESISTOMICS_TEST_POSTGRES_URL")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        URL is None, reason="set RESISTOMICS_TEST_POSTGRES_URL (see .ci/start-postgres)"
    ),
]


def _messages(buf: bytearray, *, typed: bool = True) -> Iterator[tuple[bytes, bytes, bytes]]:
    """Whole messages at the front of ``buf`` (consumed): (type, payload, raw bytes)."""
    head = 5 if typed else 4
    while len(buf) >= head:
        (length,) = struct.unpack("!I", buf[head - 4 : head])
        end = head - 4 + length
        if len(buf) < end:
            return
        raw = bytes(buf[:end])
        del buf[:end]
        yield (raw[:1] if typed else b""), raw[head:], raw
        typed = True


@dataclass
class CommitAckCutter:
    """Forwards PostgreSQL connections to ``upstream`` (host, port); once, in a
    transaction that sent a statement containing every one of ``marker``, drops the
    server's acknowledgement of ``COMMIT`` and closes both sides."""

    upstream: tuple[str, int]
    marker: tuple[bytes, ...]
    cuts: int = 0
    commits_seen: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            state = {"marked": False, "committing": False}
            threading.Thread(target=self._up, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, state), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, state: dict[str, bool]) -> None:
        buf, typed = bytearray(), False  # the startup message has no type byte
        try:
            while chunk := client.recv(65536):
                buf += chunk
                for kind, payload, raw in _messages(buf, typed=typed):
                    typed = True
                    if kind in (b"Q", b"P"):
                        sql = payload.split(b"\0")[0 if kind == b"Q" else 1].strip().upper()
                        if all(m.upper() in sql for m in self.marker):
                            state["marked"] = True
                        if sql == b"COMMIT" and state["marked"]:
                            state["committing"] = True
                        if sql == b"ROLLBACK":
                            state["marked"] = False
                    server.sendall(raw)
        except OSError:
            pass
        finally:
            _shut(client, server)

    def _down(self, server: socket.socket, client: socket.socket, state: dict[str, bool]) -> None:
        buf = bytearray()
        try:
            while chunk := server.recv(65536):
                buf += chunk
                for kind, payload, raw in _messages(buf):
                    if kind == b"C" and payload.startswith(b"COMMIT"):
                        with self._lock:
                            cut = state["committing"] and self.cuts == 0
                            self.commits_seen.append(payload)
                            if cut:
                                self.cuts += 1
                        state["marked"] = state["committing"] = False
                        if cut:  # committed on the server; the client never hears of it
                            _shut(client, server)
                            return
                    client.sendall(raw)
        except OSError:
            pass
        finally:
            _shut(client, server)


def _shut(*socks: socket.socket) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    import psycopg

    assert URL is not None
    name = f"resistomics_{uuid.uuid4().hex[:10]}"
    plain = URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield URL.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _through(proxy: CommitAckCutter, url: str) -> str:
    parts = urlsplit(url)
    # no SSL/GSS negotiation: its one-byte answers are not framed messages
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}"
    return f"{parts.scheme}://{netloc}{parts.path}?sslmode=disable&gssencmode=disable"


def _stage(c: Catalog, digest: str, uri: str) -> VersionInfo:
    return c.stage_version(
        study="s",
        dataset="d",
        modality="expression",
        dataset_type="expression.counts",
        uri=uri,
        format="zarr",
        layout="sparse-matrix",
        layout_version=1,
        digest=digest,
        schema_version="1",
        shape=[2, 2],
        code_version="t",
    )


def _proxy(url: str, *marker: bytes) -> CommitAckCutter:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return CommitAckCutter((parts.hostname, parts.port), marker)


def test_a_publish_whose_commit_acknowledgement_is_lost_succeeds_on_its_retry(
    pg_url: str,
) -> None:
    proxy = _proxy(pg_url, b"UPDATE versions", b"published_at")
    direct = Catalog(pg_url)
    direct.register_study("s", [SampleRow("A", "P1"), SampleRow("B", "P2")])
    c = Catalog(_through(proxy, pg_url), retry_seconds=30)
    try:
        v = _stage(c, "sha256:1", "/v1")
        published = c.publish_version(v.id, {"success": True}, manifest_digest="sha256:m1")

        assert proxy.cuts == 1, proxy.commits_seen  # the acknowledgement was really lost
        assert (published.id, published.status) == (v.id, VersionStatus.PUBLISHED)
        assert published.manifest_digest == "sha256:m1"
        # the server's view: one version, published once
        assert [(x.id, x.status) for x in direct.versions()] == [(v.id, VersionStatus.PUBLISHED)]
        assert direct.resolve("s/d").id == v.id

        # a publication this call did not write still fails loudly
        with pytest.raises(CatalogError, match="not staged"):
            c.publish_version(v.id, {"success": True}, manifest_digest="sha256:other")
        with pytest.raises(CatalogError, match="not staged"):
            c.publish_version(v.id, {"success": True})  # no manifest: nothing to match
        q = _stage(c, "sha256:2", "/v2")
        c.quarantine_version(q.id, {"success": False}, "/v2")
        with pytest.raises(CatalogError, match="quarantined, not staged"):
            c.publish_version(q.id, {"success": True}, manifest_digest="sha256:m2")
    finally:
        c.close()
        direct.close()
        proxy.close()


def test_a_lost_acknowledgement_of_dropping_a_duplicate_returns_the_published_one(
    pg_url: str,
) -> None:
    """The first attempt found the same bytes published already and deleted the staged
    duplicate; its retry finds the duplicate gone and returns the published version."""
    proxy = _proxy(pg_url, b"DELETE FROM versions")
    direct = Catalog(pg_url)
    direct.register_study("s", [SampleRow("A", "P1"), SampleRow("B", "P2")])
    first = _stage(direct, "sha256:1", "/v1")
    direct.publish_version(first.id, {"success": True}, manifest_digest="sha256:m1")
    c = Catalog(_through(proxy, pg_url), retry_seconds=30)
    try:
        again = _stage(c, "sha256:1", "/v2")
        outcome = c.publish_version(again.id, {"success": True}, manifest_digest="sha256:m2")

        assert proxy.cuts == 1, proxy.commits_seen
        assert outcome.id == first.id  # the caller sees "unchanged" and removes /v2
        assert [(x.id, x.status) for x in direct.versions()] == [
            (first.id, VersionStatus.PUBLISHED)
        ]
    finally:
        c.close()
        direct.close()
        proxy.close()
