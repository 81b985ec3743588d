# Reference values for cryoneuro.analysis.meta from metafor (Viechtbauer 2010, J Stat Softw 36(3)).
# Run from this folder:  Rscript meta_metafor.R
# Writes meta_effects.csv (escalc yi/vi), meta_results.csv (DL/PM/REML fits with Q-profile
# tau2 CIs), meta_random.csv + meta_random_results.csv (200 random heterogeneous sets) and
# meta_versions.json. Tolerances are tightened from metafor's defaults (threshold 1e-5, uniroot
# tol ~1.2e-4) so that the stored values are the estimators' exact solutions.
suppressMessages(library(metafor))
ctrl <- list(threshold = 1e-12, tol = 1e-13, maxiter = 10000)

effects <- list()
add_effects <- function(name, es, study) {
  effects[[name]] <<- data.frame(dataset = name, study = study, yi = as.numeric(es$yi),
                                 vi = as.numeric(es$vi))
}
# dat.bcg: BCG vaccine trials, 2x2 counts (Colditz 1994)
bcg <- dat.bcg
write.csv(data.frame(study = paste(bcg$author, bcg$year), ai = bcg$tpos, bi = bcg$tneg,
                     ci = bcg$cpos, di = bcg$cneg), "meta_bcg_counts.csv", row.names = FALSE)
for (m in c("RR", "OR", "RD")) {
  es <- escalc(measure = m, ai = tpos, bi = tneg, ci = cpos, di = cneg, data = bcg)
  add_effects(paste0("bcg_", m), es, paste(bcg$author, bcg$year))
}
# dat.normand1999: length of stay, stroke units vs general wards (mean differences)
nor <- dat.normand1999
es <- escalc(measure = "MD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i,
             n2i = n2i, data = nor)
add_effects("normand1999_MD", es, nor$source)
# dat.pritz1997: proportions (logit), a heterogeneous single-arm set
pr <- dat.pritz1997
es <- escalc(measure = "PLO", xi = xi, ni = ni, data = pr)
add_effects("pritz1997_PLO", es, paste(pr$study, pr$authors))
eff <- do.call(rbind, effects)
write.csv(eff, "meta_effects.csv", row.names = FALSE)

fit_row <- function(name, yi, vi, method) {
  fit <- rma(yi, vi, method = method, control = ctrl)
  # tau2.max raised: metafor searches the Q-profile only up to max(100, 10 tau2) by default
  ci <- confint(fit, control = list(tol = 1e-13, maxiter = 10000, tau2.max = 1e6))
  hk <- rma(yi, vi, method = method, test = "knha", control = ctrl)
  data.frame(dataset = name, method = method, k = fit$k, tau2 = fit$tau2, mu = as.numeric(fit$beta),
             se = fit$se, ci_lb = fit$ci.lb, ci_ub = fit$ci.ub, hk_ci_lb = hk$ci.lb,
             hk_ci_ub = hk$ci.ub, QE = fit$QE, I2 = fit$I2, H2 = fit$H2,
             tau2_lb = ci$random["tau^2", "ci.lb"], tau2_ub = ci$random["tau^2", "ci.ub"])
}
res <- list()
for (name in unique(eff$dataset)) {
  d <- eff[eff$dataset == name, ]
  for (method in c("DL", "PM", "REML")) res[[length(res) + 1]] <- fit_row(name, d$yi, d$vi, method)
}
write.csv(do.call(rbind, res), "meta_results.csv", row.names = FALSE)

# 200 random heterogeneous sets: k 3..20, within-study variances 0.01..0.5, true tau2 0.05..1
set.seed(20261201)
rand <- list(); rres <- list()
for (s in 1:200) {
  k <- sample(3:20, 1)
  vi <- runif(k, 0.01, 0.5)
  tau2 <- runif(1, 0.05, 1)
  yi <- rnorm(k, 0.3, sqrt(vi + tau2))
  rand[[s]] <- data.frame(set = s, yi = yi, vi = vi)
  row <- data.frame(set = s, k = k, true_tau2 = tau2)
  for (method in c("DL", "PM", "REML")) {
    fit <- rma(yi, vi, method = method, control = ctrl)
    row[[paste0(tolower(method), "_tau2")]] <- fit$tau2
    row[[paste0(tolower(method), "_mu")]] <- as.numeric(fit$beta)
    row[[paste0(tolower(method), "_se")]] <- fit$se
  }
  row$QE <- fit$QE
  rres[[s]] <- row
}
write.csv(do.call(rbind, rand), "meta_random.csv", row.names = FALSE)
write.csv(do.call(rbind, rres), "meta_random_results.csv", row.names = FALSE)
writeLines(sprintf('{"R": "%s", "metafor": "%s", "script": "meta_metafor.R"}',
                   paste(R.version$major, R.version$minor, sep = "."),
                   as.character(packageVersion("metafor"))), "meta_versions.json")

# Meta-regression (mixed effects, REML) on dat.bcg: log RR ~ absolute latitude (+ year)
es <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
mr <- list()
for (mods in c("ablat", "ablat + year")) {
  fit <- rma(yi, vi, mods = as.formula(paste("~", mods)), data = es, method = "REML",
             control = ctrl)
  mr[[mods]] <- data.frame(mods = mods, term = rownames(fit$beta), estimate = as.numeric(fit$beta),
                           se = fit$se, tau2 = fit$tau2, QE = fit$QE, QM = fit$QM, R2 = fit$R2)
}
write.csv(do.call(rbind, mr), "meta_regression.csv", row.names = FALSE)
write.csv(data.frame(study = paste(dat.bcg$author, dat.bcg$year), ablat = dat.bcg$ablat,
                     year = dat.bcg$year), "meta_bcg_moderators.csv", row.names = FALSE)
