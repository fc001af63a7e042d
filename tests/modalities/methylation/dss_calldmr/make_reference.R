# DSS 2.46 callDMR on the DSS reference DML tables of ../shared/data/methylation_rrbs/dss_2.46.0
# (test_dmr.py holds call_dmrs to these files). Made with:
#   Rscript tests/modalities/methylation/dss_calldmr/make_reference.R \
#     ../shared/data/methylation_rrbs/dss_2.46.0 tests/modalities/methylation/dss_calldmr
suppressMessages(library(DSS))
args <- commandArgs(TRUE); src <- args[1]; out <- args[2]
rd <- function(f, cls) { d <- read.delim(file.path(src, f), stringsAsFactors=FALSE); class(d)[2] <- cls; d }
wr <- function(x, f) {
  if (is.null(x)) x <- data.frame(chr=character(0), start=numeric(0), end=numeric(0))
  x[] <- lapply(x, function(v) if (is.double(v)) sprintf("%.17g", v) else v)  # all digits
  g <- gzfile(file.path(out, f), "w"); write.table(x, g, sep="\t", quote=FALSE, row.names=FALSE); close(g)
}
sm <- rd("dss_dmltest_smoothed_SLE_vs_HC.tsv.gz", "DMLtest")
raw <- rd("dss_dmltest_SLE_vs_HC.tsv.gz", "DMLtest")
mf <- rd("dss_multifactor_caseSLE.tsv.gz", "DMLtest.multiFactor")
mfc <- rd("dss_multifactor_cellrN.tsv.gz", "DMLtest.multiFactor")
wr(callDMR(sm, delta=0.1, p.threshold=0.01), "smoothed_delta0.1_p0.01.tsv.gz")
wr(callDMR(sm, p.threshold=0.05, minlen=100, minCG=5, dis.merge=200, pct.sig=0.7), "smoothed_p0.05_minlen100_mincg5_merge200_pct0.7.tsv.gz")
wr(callDMR(sm, p.threshold=0.05, minlen=20, minCG=2, dis.merge=10, pct.sig=0.3), "smoothed_p0.05_minlen20_mincg2_merge10_pct0.3.tsv.gz")
wr(callDMR(raw, p.threshold=0.05), "raw_p0.05.tsv.gz")
# two contigs: the smoothed table as chr1, the unsmoothed one renamed chr2 (its first
# position is far below chr1's last, so DSS's findRegion cuts there too)
raw2 <- raw; raw2$chr <- "chr2"; both <- rbind(sm, raw2); class(both)[2] <- "DMLtest"
wr(callDMR(both, p.threshold=0.01), "two_contigs_p0.01.tsv.gz")
wr(callDMR(mf, p.threshold=0.05, minCG=2), "multifactor_caseSLE_p0.05_mincg2.tsv.gz")
wr(callDMR(mfc, p.threshold=0.01, minCG=2), "multifactor_cellrN_p0.01_mincg2.tsv.gz")
