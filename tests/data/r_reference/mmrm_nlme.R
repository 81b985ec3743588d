# Reference values for cryoneuro.analysis.mmrm from R's nlme (Pinheiro & Bates 2000).
# Run from this folder:  Rscript mmrm_nlme.R   (needs nlme and numDeriv; Debian r-cran-nlme,
# r-cran-numderiv). The mmrm package is not in Debian and CRAN is not reachable from CI.
#
# Fit: gls(change ~ baseline + site + visit + visit:arm), REML, with
#   us : corSymm(form = ~ vnum | id) + varIdent(form = ~ 1 | visit)  (unstructured)
#   cs : corCompSymm(form = ~ vnum | id)                            (compound symmetry)
#   ar1: corAR1(form = ~ vnum | id)                                  (AR(1) over visit number)
# Estimates and SEs are nlme's. Satterthwaite df (not provided by nlme) are computed here,
# independently of the Python code: the REML criterion is written in the covariance
# parameters (for us the T(T+1)/2 distinct entries of Sigma; for cs/ar1 sigma^2 and rho), its
# Hessian and the gradient of c' Phi c are taken with numDeriv (Richardson extrapolation) at
# nlme's optimum polished by Newton steps, and df = 2 (c' Phi c)^2 / (g' A g), A = 2 H^-1 (as
# SAS and mmrm). mmrm_coef.csv keeps nlme's own estimates and SEs beside the polished ones.
suppressMessages({library(nlme); library(numDeriv)})

fit_one <- function(file, structure) {
  d <- read.csv(file, stringsAsFactors = FALSE)
  d$visit <- factor(d$visit, levels = c("w2", "m1", "m3", "m6"))
  d$arm <- factor(d$arm, levels = c("sham", "cryo"))
  d$site <- factor(d$site)
  d <- d[order(d$id, d$vnum), ]
  T <- nlevels(d$visit)
  ctl <- glsControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-10, msTol = 1e-12,
                    returnObject = FALSE)
  form <- change ~ baseline + site + visit + visit:arm
  fit <- switch(structure,
    us = gls(form, d, correlation = corSymm(form = ~ vnum | id),
             weights = varIdent(form = ~ 1 | visit), method = "REML", control = ctl),
    cs = gls(form, d, correlation = corCompSymm(form = ~ vnum | id), method = "REML",
             control = ctl),
    ar1 = gls(form, d, correlation = corAR1(form = ~ vnum | id), method = "REML", control = ctl))
  X <- model.matrix(form, d)
  y <- d$change
  ids <- split(seq_len(nrow(d)), d$id)
  # Sigma (T x T) from the fit: a participant observed at every visit
  full <- names(which(sapply(ids, length) == T))[1]
  Sigma <- unclass(getVarCov(fit, individual = full))
  sigma_of <- switch(structure,
    us = function(p) { S <- matrix(0, T, T); S[lower.tri(S, TRUE)] <- p; S + t(S) - diag(diag(S)) },
    cs = function(p) p[1] * ((1 - p[2]) * diag(T) + p[2]),
    ar1 = function(p) p[1] * p[2]^abs(outer(1:T, 1:T, "-")))
  par <- switch(structure, us = Sigma[lower.tri(Sigma, TRUE)],
                cs = c(Sigma[1, 1], Sigma[1, 2] / Sigma[1, 1]),
                ar1 = c(Sigma[1, 1], Sigma[1, 2] / Sigma[1, 1]))
  stopifnot(max(abs(sigma_of(par) - Sigma)) < 1e-10)
  pieces <- function(p) {
    S <- sigma_of(p); xvx <- 0; xvy <- 0; ld <- 0; inv <- list()
    for (i in seq_along(ids)) {
      r <- ids[[i]]; v <- d$vnum[r]; Si <- solve(S[v, v, drop = FALSE]); inv[[i]] <- Si
      ld <- ld + as.numeric(determinant(S[v, v, drop = FALSE])$modulus)
      xvx <- xvx + t(X[r, , drop = FALSE]) %*% Si %*% X[r, , drop = FALSE]
      xvy <- xvy + t(X[r, , drop = FALSE]) %*% Si %*% y[r]
    }
    list(xvx = xvx, xvy = xvy, ld = ld, inv = inv)
  }
  m2reml <- function(p) {
    k <- pieces(p); b <- solve(k$xvx, k$xvy); q <- 0
    for (i in seq_along(ids)) { r <- ids[[i]]; e <- y[r] - X[r, , drop = FALSE] %*% b
      q <- q + as.numeric(t(e) %*% k$inv[[i]] %*% e) }
    k$ld + q + as.numeric(determinant(k$xvx)$modulus) + (nrow(X) - ncol(X)) * log(2 * pi)
  }
  phi <- function(p) solve(pieces(p)$xvx)
  b_nlme <- coef(fit); V_nlme <- vcov(fit)
  stopifnot(max(abs(phi(par) - V_nlme)) < 1e-6 * max(abs(V_nlme)))
  # nlme stops at its own tolerance; Newton steps on the REML criterion (numDeriv gradient and
  # Hessian) take its optimum to machine precision, so that the reference has digits to spare.
  # Initial step 1e-2 relative: numDeriv's default 0.1 leaves the positive-definite region,
  # 1e-3 loses digits to rounding (df 89.059 vs 89.073 at 1e-2, 89.073 in Python).
  nd <- list(d = 1e-2, r = 6)
  before <- m2reml(par)
  for (it in 1:4) {
    H <- hessian(m2reml, par, method.args = nd)
    par <- par - solve(H, grad(m2reml, par, method.args = nd))
  }
  stopifnot(m2reml(par) <= before + 1e-9)
  H <- hessian(m2reml, par, method.args = nd)
  A <- 2 * solve(H)
  k <- pieces(par)
  V <- solve(k$xvx)
  b <- setNames(as.vector(V %*% k$xvy), names(b_nlme))
  Sigma <- sigma_of(par)
  out <- data.frame()
  for (name in names(b)) {
    cvec <- as.numeric(names(b) == name)
    g <- grad(function(p) as.numeric(t(cvec) %*% phi(p) %*% cvec), par)
    v <- as.numeric(t(cvec) %*% V %*% cvec)
    out <- rbind(out, data.frame(data = basename(file), structure = structure, term = name,
                                 nlme_estimate = b_nlme[[name]],
                                 nlme_se = sqrt(V_nlme[name, name]),
                                 estimate = b[[name]], se = sqrt(v),
                                 df = 2 * v^2 / as.numeric(t(g) %*% A %*% g)))
  }
  sig <- data.frame(data = basename(file), structure = structure,
                    row = rep(1:T, T), col = rep(1:T, each = T), sigma = as.vector(Sigma))
  list(coef = out, sigma = sig, m2reml = data.frame(data = basename(file),
       structure = structure, minus2_reml_nlme_optimum = before,
       minus2_reml_covparam = m2reml(par),
       nlme_logLik = as.numeric(logLik(fit))))
}

coefs <- list(); sigmas <- list(); lls <- list()
for (file in c("mmrm_data_complete.csv", "mmrm_data_dropout.csv")) {
  for (structure in c("us", "cs", "ar1")) {
    r <- fit_one(file, structure)
    coefs[[length(coefs) + 1]] <- r$coef; sigmas[[length(sigmas) + 1]] <- r$sigma
    lls[[length(lls) + 1]] <- r$m2reml
  }
}
write.csv(do.call(rbind, coefs), "mmrm_coef.csv", row.names = FALSE)
write.csv(do.call(rbind, sigmas), "mmrm_sigma.csv", row.names = FALSE)
write.csv(do.call(rbind, lls), "mmrm_reml.csv", row.names = FALSE)
writeLines(sprintf('{"R": "%s", "nlme": "%s", "numDeriv": "%s", "script": "mmrm_nlme.R"}',
                   paste(R.version$major, R.version$minor, sep = "."),
                   as.character(packageVersion("nlme")), as.character(packageVersion("numDeriv"))),
           "mmrm_versions.json")
