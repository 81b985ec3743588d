# Kenward-Roger reference for cryoneuro.analysis.mmrm (compound symmetry) from pbkrtest
# (Halekoh & Hojsgaard 2014, J Stat Softw 59(9)) on the equivalent random-intercept model
# lmer(change ~ baseline + site + visit + visit:arm + (1 | id)), REML: with a positive
# correlation, compound symmetry and a random intercept are the same covariance, and the
# variance components (sigma_b^2, sigma_e^2) are a linear parameterisation of it.
# Run from this folder: Rscript mmrm_kr_pbkrtest.R  (Debian r-cran-lme4, r-cran-pbkrtest).
suppressMessages({library(lme4); library(pbkrtest)})
out <- list()
for (file in c("mmrm_data_complete.csv", "mmrm_data_dropout.csv")) {
  d <- read.csv(file, stringsAsFactors = FALSE)
  d$visit <- factor(d$visit, levels = c("w2", "m1", "m3", "m6"))
  d$arm <- factor(d$arm, levels = c("sham", "cryo"))
  d$site <- factor(d$site)
  fit <- lmer(change ~ baseline + site + visit + visit:arm + (1 | id), data = d, REML = TRUE,
              control = lmerControl(optimizer = "bobyqa",
                                    optCtrl = list(rhobeg = 1e-2, rhoend = 1e-12)))
  Va <- as.matrix(vcovAdj(fit))
  b <- fixef(fit)
  for (name in names(b)) {
    L <- matrix(as.numeric(names(b) == name), nrow = 1)
    out[[length(out) + 1]] <- data.frame(data = file, term = name, estimate = b[[name]],
                                         se_kr = sqrt(Va[name, name]),
                                         df_kr = get_Lb_ddf(fit, L))
  }
}
write.csv(do.call(rbind, out), "mmrm_kr.csv", row.names = FALSE)
writeLines(sprintf('{"R": "%s", "lme4": "%s", "pbkrtest": "%s", "script": "mmrm_kr_pbkrtest.R"}',
                   paste(R.version$major, R.version$minor, sep = "."),
                   as.character(packageVersion("lme4")), as.character(packageVersion("pbkrtest"))),
           "mmrm_kr_versions.json")
