# Reference values for cryoneuro.analysis.effects from base R and survival (Therneau).
# Run from this folder: Rscript effects_R.R  (Debian r-base-core, r-cran-survival).
# cox_data.csv: 60 participants, exponential times (rate halved in the treated), uniform
# censoring, integer days with ties (written by make_cox_data.py).
suppressMessages(library(survival))
d <- read.csv("cox_data.csv")
fit <- coxph(Surv(duration, event) ~ treated, data = d, ties = "efron")
s <- summary(fit)
cox <- data.frame(what = "cox_efron", estimate = s$conf.int[1, "exp(coef)"],
                  lower = s$conf.int[1, "lower .95"], upper = s$conf.int[1, "upper .95"],
                  p = s$coefficients[1, "Pr(>|z|)"])
tables <- list(c(48, 11, 16, 42), c(5, 51, 0, 29), c(3, 17, 9, 11))
fish <- do.call(rbind, lapply(seq_along(tables), function(i) {
  f <- fisher.test(matrix(tables[[i]], 2, byrow = TRUE))
  data.frame(what = paste0("fisher_", paste(tables[[i]], collapse = "_")),
             estimate = unname(f$estimate), lower = f$conf.int[1], upper = f$conf.int[2],
             p = f$p.value)
}))
write.csv(rbind(cox, fish), "effects_reference.csv", row.names = FALSE)
writeLines(sprintf('{"R": "%s", "survival": "%s", "script": "effects_R.R"}',
                   paste(R.version$major, R.version$minor, sep = "."),
                   as.character(packageVersion("survival"))), "effects_versions.json")
