"""Small, realistic metabolomics input files of every reader, written from known values.

Each writer takes the sample names, the values (features x samples; NaN written as an
empty cell, ``-inf`` as a below-detection marker) and returns the path, so a test can
compare what a reader returns with what was written. Used by the metabolomics tests
and by the generic bad-file suite (``modalities/test_bad_files.py``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Metabolites with real identifiers (HMDB, KEGG, PubChem CID, InChIKey, m/z [M+H]+).
METABOLITES: list[tuple[str, str, str, str, str, float, float]] = [
    ("kynurenine", "HMDB0000684", "C00328", "846", "YGPSJZOEDVAXAB-UHFFFAOYSA-N", 209.0921, 3.12),
    ("tryptophan", "HMDB0000929", "C00078", "6305", "QIVBCDIJIAJPQS-VIFPVBQESA-N", 205.0972, 4.25),
    ("quinolinate", "HMDB0000232", "C03722", "1066", "GJAWHXHKYYXBSV-UHFFFAOYSA-N", 168.0291, 1.05),
    ("citrulline", "HMDB0000904", "C00327", "9750", "RHGKLRLOHDJJDR-BYPYZUCNSA-N", 176.1030, 0.88),
    ("glutamine", "HMDB0000641", "C00064", "5961", "ZDXPYRJPNDTMRX-VKHMYHEASA-N", 147.0764, 0.79),
    (
        "glutathione",
        "HMDB0000125",
        "C00051",
        "124886",
        "RWSXRVCMGQZWBV-WDSKDSINSA-N",
        308.0911,
        1.40,
    ),
]


def values(n_features: int, n_samples: int, *, seed: int = 3) -> np.ndarray:
    """Log-normal abundances with ~10 % empty cells and a few below detection (-inf);
    every feature keeps at least one value."""
    rng = np.random.default_rng(seed)
    v = np.round(rng.lognormal(8.0, 1.2, size=(n_features, n_samples)), 3)
    v[rng.random(v.shape) < 0.10] = np.nan
    v[rng.random(v.shape) < 0.05] = -np.inf
    v[:, 0] = np.where(np.isfinite(v[:, 0]), v[:, 0], 1.5)
    return v


def feature_names(n: int) -> list[str]:
    """The known metabolites first, then numbered unknowns."""
    return [m[0] for m in METABOLITES[:n]] + [f"unknown {i}" for i in range(n - len(METABOLITES))]


def _cell(x: float, *, below: str = "ND") -> str:
    if np.isnan(x):
        return ""
    if np.isneginf(x):
        return below
    return repr(float(x))


def _annotation(name: str, i: int) -> tuple[str, str, str, str, float, float]:
    known = {m[0]: m[1:] for m in METABOLITES}
    if name in known:
        return known[name]
    return "", "", "", "", round(100.0 + 7.31 * i, 4), round(0.5 + 0.11 * i, 2)


def write_mwtab(
    path: Path,
    samples: Sequence[str],
    v: np.ndarray,
    *,
    groups: Sequence[str] | None = None,
    order: Sequence[int] | None = None,
    batch: Sequence[str] | None = None,
    section: str = "MS_METABOLITE_DATA",
) -> Path:
    """An mwTab text file as the Metabolomics Workbench exports it (MS or NMR binned)."""
    names = feature_names(v.shape[0])
    groups = groups or ["QC" if "QC" in s else "case" for s in samples]
    lines = [
        "#METABOLOMICS WORKBENCH STUDY_ID:ST009901 ANALYSIS_ID:AN009901 PROJECT_ID:PR009901",
        "VERSION             \t1",
        "CREATED_ON          \t2026-12-02",
        "#PROJECT",
        "PR:PROJECT_TITLE                 \tTryptophan catabolism in therapy resistance",
        "PR:PROJECT_TYPE                  \tMS quantitative analysis",
        "PR:INSTITUTE                     \tTest Institute",
        "#STUDY",
        "ST:STUDY_TITLE                   \tPlasma metabolomics of resistant tumours",
        "ST:NUM_GROUPS                    \t2",
        "#SUBJECT",
        "SU:SUBJECT_TYPE                  \tHuman",
        "SU:SUBJECT_SPECIES               \tHomo sapiens",
        "#SUBJECT_SAMPLE_FACTORS:         \tSUBJECT(optional)[tab]SAMPLE[tab]FACTORS(NAME:VALUE "
        "pairs separated by |)[tab]Additional sample data",
    ]
    for j, s in enumerate(samples):
        extra = [f"RAW_FILE_NAME={s}.raw"]
        if order is not None:
            extra.append(f"Injection order={order[j]}")
        if batch is not None:
            extra.append(f"Batch={batch[j]}")
        subject = "-" if "QC" in s else f"SUBJ{j:02d}"
        lines.append(
            f"SUBJECT_SAMPLE_FACTORS           \t{subject}\t{s}\tGroup:{groups[j]} | Time:0"
            f"\t{'; '.join(extra)}"
        )
    lines += [
        "#COLLECTION",
        "CO:COLLECTION_SUMMARY            \tEDTA plasma, stored at -80 C",
        "#TREATMENT",
        "TR:TREATMENT_SUMMARY             \tNone",
        "#SAMPLEPREP",
        "SP:SAMPLEPREP_SUMMARY            \tMethanol extraction",
        "#CHROMATOGRAPHY",
        "CH:CHROMATOGRAPHY_TYPE           \tReversed phase",
        "#ANALYSIS",
        f"AN:ANALYSIS_TYPE                 \t{'NMR' if 'NMR' in section else 'MS'}",
    ]
    if "NMR" in section:
        lines += ["#NMR", "NM:INSTRUMENT_TYPE               \tFT-NMR"]
    else:
        lines += ["#MS", "MS:INSTRUMENT_NAME               \tThermo Q Exactive Orbitrap"]
    lines += [
        f"#{section}",
        f"{section}:UNITS\t{'ppm bin area' if 'BINNED' in section else 'Peak area'}",
        f"{section}_START",
        "\t".join(["Bin range(ppm)" if "BINNED" in section else "Samples", *samples]),
    ]
    if "BINNED" not in section:
        lines.append("\t".join(["Factors", *(f"Group:{g} | Time:0" for g in groups)]))
    for i, n in enumerate(names):
        lines.append("\t".join([n, *(_cell(x) for x in v[i])]))
    lines.append(f"{section}_END")
    if "BINNED" not in section:
        lines += [
            "#METABOLITES",
            "METABOLITES_START",
            "metabolite_name\tmoverz_quant\tri\tri_type\tpubchem_id\tinchi_key\tkegg_id\thmdb_id",
        ]
        for i, n in enumerate(names):
            hmdb, kegg, cid, key, mz, rt = _annotation(n, i)
            lines.append(f"{n}\t{mz}\t{rt}\tRetention time\t{cid}\t{key}\t{kegg}\t{hmdb}")
        lines.append("METABOLITES_END")
    lines.append("#END")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def mwtab_json(
    samples: Sequence[str],
    v: np.ndarray,
    *,
    order: Sequence[int] | None = None,
    batch: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The JSON form (as the Workbench's REST ``mwtab`` JSON output) of the same study."""
    names = feature_names(v.shape[0])
    ssf = []
    for j, s in enumerate(samples):
        extra: dict[str, str] = {"RAW_FILE_NAME": f"{s}.raw"}
        if order is not None:
            extra["Injection order"] = str(order[j])
        if batch is not None:
            extra["Batch"] = batch[j]
        ssf.append(
            {
                "Subject ID": "-",
                "Sample ID": s,
                "Factors": {"Group": "QC" if "QC" in s else "case"},
                "Additional sample data": extra,
            }
        )
    data = [
        {"Metabolite": n, **{s: _cell(x) for s, x in zip(samples, v[i], strict=True)}}
        for i, n in enumerate(names)
    ]
    mets = []
    for i, n in enumerate(names):
        hmdb, kegg, cid, key, mz, rt = _annotation(n, i)
        mets.append(
            {
                "Metabolite": n,
                "moverz_quant": str(mz),
                "ri": str(rt),
                "ri_type": "Retention time",
                "pubchem_id": cid,
                "inchi_key": key,
                "kegg_id": kegg,
                "hmdb_id": hmdb,
            }
        )
    return {
        "METABOLOMICS WORKBENCH": {
            "STUDY_ID": "ST009901",
            "ANALYSIS_ID": "AN009901",
            "VERSION": "1",
            "CREATED_ON": "2026-12-02",
        },
        "PROJECT": {"PROJECT_TITLE": "Tryptophan catabolism in therapy resistance"},
        "STUDY": {"STUDY_TITLE": "Plasma metabolomics of resistant tumours"},
        "SUBJECT": {"SUBJECT_TYPE": "Human"},
        "SUBJECT_SAMPLE_FACTORS": ssf,
        "ANALYSIS": {"ANALYSIS_TYPE": "MS"},
        "MS": {"INSTRUMENT_NAME": "Thermo Q Exactive Orbitrap"},
        "MS_METABOLITE_DATA": {"Units": "Peak area", "Data": data, "Metabolites": mets},
    }


def write_mwtab_json(path: Path, samples: Sequence[str], v: np.ndarray, **kw: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(mwtab_json(samples, v, **kw), indent=4) + "\n")
    return path


def write_metaboanalyst(
    path: Path,
    samples: Sequence[str],
    v: np.ndarray,
    *,
    order: Sequence[int] | None = None,
    batch: Sequence[str] | None = None,
    sep: str = ",",
) -> Path:
    """A MetaboAnalyst table, samples as rows (``Sample, Label, [order, batch,] ...``)."""
    names = feature_names(v.shape[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=sep, lineterminator="\n")
        run = (["injection_order"] if order is not None else []) + (
            ["batch"] if batch is not None else []
        )
        w.writerow(["Sample", "Label", *run, *names])
        for j, s in enumerate(samples):
            cells = ([str(order[j])] if order is not None else []) + (
                [batch[j]] if batch is not None else []
            )
            label = "QC" if "QC" in s else "case"
            w.writerow([s, label, *cells, *(_cell(x) for x in v[:, j])])
    return path


def write_feature_table(
    path: Path,
    samples: Sequence[str],
    v: np.ndarray,
    *,
    order: Sequence[int] | None = None,
    batch: Sequence[str] | None = None,
) -> Path:
    """An MS-DIAL alignment export (tab-separated; Class / File type / Injection order /
    Batch ID rows above the header)."""
    names = feature_names(v.shape[0])
    meta = ["Alignment ID", "Average Rt(min)", "Average Mz", "Metabolite name", "INCHIKEY"]
    pad = [""] * (len(meta) - 1)
    types = ["QC" if "QC" in s else "Sample" for s in samples]
    lines = ["\t".join([*pad, "Class", *("QC" if "QC" in s else "case" for s in samples)])]
    lines.append("\t".join([*pad, "File type", *types]))
    if order is not None:
        lines.append("\t".join([*pad, "Injection order", *map(str, order)]))
    if batch is not None:
        lines.append("\t".join([*pad, "Batch ID", *batch]))
    lines.append("\t".join([*meta, *samples]))
    for i, n in enumerate(names):
        _, _, _, key, mz, rt = _annotation(n, i)
        lines.append("\t".join([str(i), str(rt), str(mz), n, key, *(_cell(x) for x in v[i])]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_mztab_m(
    path: Path,
    samples: Sequence[str],
    v: np.ndarray,
    *,
    order: Sequence[int] | None = None,
    batch: Sequence[str] | None = None,
) -> Path:
    """An mzTab-M 2.0 file: one assay, ms run and sample per column; ``null`` for an empty
    cell; injection order and batch as assay user parameters."""
    names = feature_names(v.shape[0])
    mtd = ["MTD\tmzTab-version\t2.0.0-M", "MTD\tmzTab-ID\tMTBLS9901"]
    for j, s in enumerate(samples, start=1):
        mtd += [
            f"MTD\tms_run[{j}]-location\tfile:///data/{s}.mzML",
            f"MTD\tsample[{j}]\t{s}",
            f"MTD\tassay[{j}]\tassay {s}",
            f"MTD\tassay[{j}]-ms_run_ref\tms_run[{j}]",
            f"MTD\tassay[{j}]-sample_ref\tsample[{j}]",
        ]
        if order is not None:
            mtd.append(f"MTD\tassay[{j}]-custom[1]\t[,,injection order,{order[j - 1]}]")
        if batch is not None:
            mtd.append(f"MTD\tassay[{j}]-custom[2]\t[,,batch,{batch[j - 1]}]")
    head = ["SMH", "SML_ID", "SMF_ID_REFS", "database_identifier", "chemical_name"]
    head += [f"abundance_assay[{j}]" for j in range(1, len(samples) + 1)]
    rows = []
    for i, n in enumerate(names):
        hmdb = _annotation(n, i)[0]
        cells = ["null" if np.isnan(x) else _cell(x, below="<LOD") for x in v[i]]
        rows.append(
            "\t".join(["SML", str(i + 1), "null", f"HMDB:{hmdb}" if hmdb else "null", n, *cells])
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([*mtd, "\t".join(head), *rows]) + "\n")
    return path
