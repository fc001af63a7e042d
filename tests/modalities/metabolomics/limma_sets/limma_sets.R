# References for tests/modalities/metabolomics/test_enrichment.py (no R in CI):
# limma's geneSetTest (competitive rank test) on gene_set_test_stats.txt (120 statistics;
# sets up = 1:8, down = 9:14, mixed = odd 1..13) for each alternative, and fry
# (self-contained rotation test, standardize = "none") on fry_values.tsv (60 features x
# 16 samples, groups 8 + 8; sets a = 1:6, b = 11:20, c = 4:9 with weights -1 at 4 and 8,
# d = 31). Run: Rscript limma_sets.R (here). Made with limma 3.54.1 (Debian r-bioc-limma).
suppressMessages(library(limma))
s <- scan("gene_set_test_stats.txt", quiet = TRUE)
sets <- list(up = 1:8, down = 9:14, mixed = seq(1, 14, 2))
rows <- list()
for (a in c("up", "down", "either", "mixed")) for (n in names(sets))
  rows[[length(rows) + 1]] <- data.frame(alternative = a, set = n,
                                         p = sprintf("%.17g", geneSetTest(sets[[n]], s, alternative = a)))
write.table(do.call(rbind, rows), "gene_set_test_reference.tsv", sep = "\t", quote = FALSE,
            row.names = FALSE)
y <- as.matrix(read.table("fry_values.tsv"))
g <- rep(c(0, 1), each = 8)
w <- ifelse(4:9 %in% c(4, 8), -1, 1)
r <- fry(y, list(a = 1:6, b = 11:20, c = data.frame(4:9, w), d = 31), cbind(1, g),
         contrast = 2, standardize = "none", sort = "none")
r[] <- lapply(r, function(x) if (is.numeric(x)) sprintf("%.17g", x) else x)
write.table(r, "fry_reference.tsv", sep = "\t", quote = FALSE, col.names = NA)
cat("limma", as.character(packageVersion("limma")), "\n")
