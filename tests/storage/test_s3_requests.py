"""How many S3 requests one small ingest makes, by kind, against a budget.

A proxy between s3fs and a moto server (``storage.test_s3_faults.FaultProxy``) logs
every request; an ingest of a 200-gene bulk table (4 samples) from a local landing zone
onto an S3 data root must stay within ``BUDGET`` requests (the measured count with a
margin; twice the measured count fails), so a change that multiplies zarr metadata
reads, existence checks or listings is caught.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from resistomics.pipeline import ingest
from storage.test_s3 import KEY, SECRET, _bulk, _workspace, bucket, s3_endpoint
from storage.test_s3_faults import FaultProxy

__all__ = ["bucket", "s3_endpoint"]  # fixtures, used by name

pytestmark = pytest.mark.integration

# 1,570 before obs/var/uns were composed in memory (storage._sparse_matrix._write_composed),
# 464 after; twice that fails
BUDGET = 700


def kind(method: str, path: str) -> str:
    """A request's kind: method, listing or object, and the object's file name pattern."""
    if "list-type=2" in path or "delimiter=" in path or "prefix=" in path:
        return f"{method} list"
    key = path.split("?", 1)[0].rstrip("/")
    name = key.rsplit("/", 1)[-1]
    name = re.sub(r"\d+", "N", name)
    return f"{method} {name}"


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    p = FaultProxy(s3_endpoint)
    yield p
    p.close()


def test_a_small_ingest_to_s3_stays_within_its_request_budget(
    tmp_path: Path, bucket: str, proxy: FaultProxy
) -> None:
    options = {"endpoint_url": proxy.url, "key": KEY, "secret": SECRET}
    ws = _workspace(tmp_path, bucket, options, landing=str(tmp_path / "landing"))
    try:
        landed = tmp_path / "landing" / "st" / "expression" / "bulk.tsv"
        landed.parent.mkdir(parents=True)
        _bulk(landed, seed=1)
        proxy.log.clear()

        outcome = ingest(ws, str(landed), study="st")

        assert outcome.status == "published", outcome.message
        kinds = Counter(kind(m, p) for m, p in proxy.log)
        print(f"\n{len(proxy.log)} requests:")
        for k, n in kinds.most_common():
            print(f"{n:6d}  {k}")
        assert len(proxy.log) <= BUDGET, kinds.most_common(20)
    finally:
        ws.close()
