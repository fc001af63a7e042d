"""S3 faults between the platform and the object store: retried, or one clear failure.

A small HTTP proxy sits between s3fs and a moto server (both on 127.0.0.1) and answers
some requests itself, as a struggling object store or network does: ``503 SlowDown``,
``500 InternalError``, or a connection closed without an answer. Transient faults are
retried with backoff (the data root's botocore "standard" retry policy,
``resistomics.storage.S3_RETRIES``) and the ingest publishes exactly as without them;
faults that persist end the ingest with one ``[storage]`` line, nothing published, the
catalog unchanged and nothing left under the version directory.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from resistomics.catalog import VersionStatus
from resistomics.errors import StorageError
from resistomics.pipeline import ingest
from resistomics.storage import S3_RETRIES, verify_manifest
from storage.test_s3 import KEY, SECRET, _bulk, _workspace, bucket, s3_endpoint

__all__ = ["bucket", "s3_endpoint"]  # fixtures, used by name

pytestmark = pytest.mark.integration

_ERRORS = {
    503: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
}

Fault = Callable[[int, str], int | str | None]  # (request number, method) -> fault


@dataclass
class FaultProxy:
    """Forwards S3 requests to ``upstream``; ``fault(n, method)`` may answer request ``n``
    itself: a status (503, 500) with an S3 error body, or ``"drop"`` (close unanswered)."""

    upstream: str
    fault: Fault = lambda n, method: None
    requests: int = 0
    injected: list[tuple[int, str, int | str]] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)  # (method, path?query)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        proxy = self
        target = urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy.requests += 1
                    proxy.log.append((self.command, self.path))
                    n = proxy.requests
                    chosen = proxy.fault(n, self.command)
                    if chosen is not None:
                        proxy.injected.append((n, self.command, chosen))
                if chosen == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if isinstance(chosen, int):
                    code, message = _ERRORS[chosen]
                    payload = (
                        '<?xml version="1.0" encoding="UTF-8"?>'
                        f"<Error><Code>{code}</Code><Message>{message}</Message>"
                        f"<RequestId>fault-{n}</RequestId></Error>"
                    ).encode()
                    self.send_response(chosen)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    reply = conn.getresponse()
                    data = reply.read()
                finally:
                    conn.close()
                self.send_response(reply.status, reply.reason)
                for k, v in reply.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                # a HEAD answer has no body but the object's length (what s3fs sizes by)
                length = reply.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    p = FaultProxy(s3_endpoint)
    yield p
    p.close()


def _burst_then_every(
    start: int, count: int, k: int, faults: tuple[int | str, ...], *, most: int = 9
) -> Fault:
    """``count`` requests in a row answer 503 from the ``start``-th on (a minute of
    trouble: one request retried ``count`` times), then, once the burst is over, every
    ``k``-th request fails once (its retry is another request and passes), with
    ``faults`` in turn, the first ``most`` times: each costs a backoff, and one ingest
    makes hundreds of requests. Both patterns in one ingest: it is the ingest (a
    thousand-odd S3 requests through the proxy) that takes the time, not the faults."""
    first = (start + count) // k + 1  # the first k-th request after the burst

    def fault(n: int, method: str) -> int | str | None:
        if start <= n < start + count:
            return 503
        if n % k == 0 and first <= n // k < first + most:
            return faults[(n // k) % len(faults)]
        return None

    return fault


def test_transient_s3_faults_are_retried_and_the_ingest_publishes(
    tmp_path: Path, bucket: str, proxy: FaultProxy
) -> None:
    options = {"endpoint_url": proxy.url, "key": KEY, "secret": SECRET}
    ws = _workspace(tmp_path, bucket, options, landing=str(tmp_path / "landing"))
    try:
        assert ws.root.storage_options["config_kwargs"]["retries"] == S3_RETRIES
        landed = tmp_path / "landing" / "st" / "expression" / "bulk.tsv"
        landed.parent.mkdir(parents=True)
        _bulk(landed, seed=1)
        # 503 SlowDown 4 requests in a row; then 503 SlowDown, 500 InternalError and a
        # dropped connection in turn, every 7th request, 9 times
        proxy.fault = _burst_then_every(6, 4, 7, (503, 500, "drop"))

        outcome = ingest(ws, str(landed), study="st")

        assert [n for n, _, _ in proxy.injected[:4]] == [6, 7, 8, 9]
        assert {f for _, _, f in proxy.injected[:4]} == {503}
        assert len(proxy.injected) == 4 + 9, proxy.injected
        assert {f for _, _, f in proxy.injected[4:]} == {503, 500, "drop"}
        assert outcome.status == "published", outcome.message
        assert outcome.version is not None
        (version,) = ws.catalog.versions(study="st")
        assert version.status == VersionStatus.PUBLISHED
        proxy.fault = lambda n, method: None
        # every stored file is there and matches the manifest written at publish
        assert version.manifest_digest is not None
        problems = verify_manifest(ws.root, ws.root.to_path(version.uri), version.manifest_digest)
        assert problems == (problems[0], [])
    finally:
        ws.close()


def test_persistent_s3_faults_fail_in_one_line_and_publish_nothing(
    tmp_path: Path, bucket: str, proxy: FaultProxy
) -> None:
    # fewer attempts than the default (a user's override of the retry policy), so the
    # test waits seconds, not a minute
    options = {
        "endpoint_url": proxy.url,
        "key": KEY,
        "secret": SECRET,
        "config_kwargs": {"retries": {"max_attempts": 3, "mode": "standard"}},
    }
    ws = _workspace(tmp_path, bucket, options, landing=str(tmp_path / "landing"))
    try:
        landed = tmp_path / "landing" / "st" / "expression" / "bulk.tsv"
        landed.parent.mkdir(parents=True)
        _bulk(landed, seed=2)
        before = ws.catalog.snapshot()
        # from now on the store refuses every write (reads and deletes still work)
        proxy.fault = lambda n, method: 503 if method in ("PUT", "POST") else None

        with pytest.raises(StorageError) as err:
            ingest(ws, str(landed), study="st")

        line = str(err.value)
        assert "\n" not in line and len(line) < 2000, line
        assert line.startswith(f"{landed}: [storage] "), line
        assert "SlowDown" in line or "reduce your request rate" in line, line
        assert "nothing was published" in line
        attempts = [n for n, method, _ in proxy.injected]
        assert len(attempts) >= 3  # the first write was tried max_attempts times
        assert ws.catalog.snapshot() == before
        assert landed.exists()  # back in the landing zone, for a retry
        proxy.fault = lambda n, method: None
        datasets = ws.root.path("datasets")
        left = [p for p in ws.root.fs.find(datasets)] if ws.root.fs.exists(datasets) else []
        assert left == [], left
    finally:
        ws.close()
