"""Where the real public data of ../shared/data lives (see its README)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()
T47D = SHARED_DATA / "t47d_esr1"
GENESETS = SHARED_DATA / "genesets" / "h.all.v7.0.symbols.gmt"
APL = SHARED_DATA / "apl_relapse"
