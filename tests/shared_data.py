"""Where the real public data of ../shared/data lives (see its README)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# ../shared/data next to the checkout; a git worktree under <checkout>/../wt/NAME finds it
# one level further up.
SHARED_DATA = next(
    (
        (base / "shared" / "data").resolve()
        for base in (REPO.parent, REPO.parent.parent)
        if (base / "shared" / "data").is_dir()
    ),
    (REPO.parent / "shared" / "data").resolve(),
)
T47D = SHARED_DATA / "t47d_esr1"
GENESETS = SHARED_DATA / "genesets" / "h.all.v7.0.symbols.gmt"
APL = SHARED_DATA / "apl_relapse"
