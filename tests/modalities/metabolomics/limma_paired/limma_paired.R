# Reference for tests/modalities/metabolomics/test_analyses.py::test_paired_limma_matches_r:
# limma's moderated t of the arm (after vs before) with the subject in the design
# (limma user's guide, section 9.4 "Paired samples"), on paired_values.tsv (log2 values,
# NA missing; columns S<i>_after, S<i>_before). Run: Rscript limma_paired.R
# Made with limma 3.54.1 (Debian r-bioc-limma).
suppressMessages(library(limma))
x <- as.matrix(read.delim("paired_values.tsv", row.names = 1, check.names = FALSE))
arm <- factor(sub("^S[0-9]+_", "", colnames(x)), levels = c("before", "after"))
subject <- factor(sub("_.*$", "", colnames(x)))
design <- model.matrix(~ arm + subject)
fit <- eBayes(lmFit(x, design))
tt <- topTable(fit, coef = "armafter", number = Inf, sort.by = "none")
out <- data.frame(feature_id = rownames(tt), logFC = tt$logFC, t = tt$t,
                  P.Value = tt$P.Value, adj.P.Val = tt$adj.P.Val)
write.table(format(out, digits = 17), "limma_paired_reference.tsv", sep = "\t",
            quote = FALSE, row.names = FALSE)
cat("limma", as.character(packageVersion("limma")), "\n")
