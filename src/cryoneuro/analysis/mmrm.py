"""Mixed model for repeated measures (MMRM) on NumPy/SciPy: REML, unstructured covariance,
Satterthwaite degrees of freedom.

Why here: statsmodels has no linear model with an unstructured within-subject covariance
(statsmodels issue 646), and the random-intercept model it offers assumes equal variances and
equal correlations at every visit, which a pain trial rarely has — on the issue-15 data the
random-intercept CI at the primary visit crossed 0 while the unstructured MMRM's did not. The
model (Mallinckrodt et al. 2008, Drug Inf J 42:303; the R package ``mmrm``, Sabanés Bové et
al. 2023):

    yᵢ = Xᵢβ + εᵢ,   εᵢ ~ N(0, Σᵢ),   Σᵢ = the rows/columns of Σ (T × T) at i's visits

fitted by restricted maximum likelihood (Patterson & Thompson 1971):

    −2ℓ_R(θ) = Σᵢ [log|Σᵢ| + rᵢᵀΣᵢ⁻¹rᵢ] + log|Σᵢ XᵢᵀΣᵢ⁻¹Xᵢ| + (N − p) log 2π,
    β̂(θ) = (Σ XᵢᵀΣᵢ⁻¹Xᵢ)⁻¹ Σ XᵢᵀΣᵢ⁻¹yᵢ,   rᵢ = yᵢ − Xᵢβ̂.

Covariance Σ(θ): ``us`` unstructured, Σ = LLᵀ with L lower triangular, log of its diagonal
and its off-diagonal entries as θ (T(T+1)/2 parameters); ``cs`` compound symmetry σ²[(1−ρ)I +
ρJ]; ``ar1`` σ²ρ^|j−k| over visit ranks. The gradient of −2ℓ_R is analytic,
``tr(V⁻¹V_k) − tr(Φ XᵀV⁻¹V_kV⁻¹X) − rᵀV⁻¹V_kV⁻¹r`` with Φ = (XᵀV⁻¹X)⁻¹ (Harville 1977), and
the fit is BFGS followed by Newton steps on a central-difference Hessian of that gradient.
Missing visits are handled by the likelihood (missing at random).

Inference for a contrast cᵀβ: SE = √(cᵀΦc) and Satterthwaite's degrees of freedom
``ν = 2(cᵀΦc)² / (gᵀAg)``, g = ∂(cᵀΦ(θ)c)/∂θ (analytic: ∂Φ/∂θ_k = Φ XᵀV⁻¹V_kV⁻¹X Φ), A = the inverse
observed information of θ = 2·H⁻¹ with H the Hessian of −2ℓ_R (as ``mmrm`` and ``lmerTest``); the CI
uses t(ν). Kenward–Roger (adjusted covariance and df) is available for us and cs
(:meth:`MMRMFit.contrast` with ``df_method="kenward-roger"``). Checked against R
(tests/data/r_reference/).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import linalg, optimize, stats

from cryoneuro.errors import InputError

Structure = Literal["us", "cs", "ar1"]
STRUCTURES: dict[str, str] = {
    "us": "unstructured",
    "cs": "compound symmetry",
    "ar1": "first-order autoregressive",
}


@dataclass
class Contrast:
    estimate: float
    se: float
    df: float
    t: float
    p: float
    ci_lower: float
    ci_upper: float


@dataclass
class MMRMFit:
    """A fitted MMRM: coefficients, their covariance, Σ, and what inference needs."""

    names: list[str]
    beta: np.ndarray
    cov_beta: np.ndarray
    sigma: np.ndarray
    theta: np.ndarray
    structure: str
    minus2_reml: float
    converged: bool
    n_subjects: int
    n_obs: int
    message: str = ""
    _dphi: np.ndarray | None = field(default=None, repr=False)
    _kr: tuple | None = field(default=None, repr=False)
    _kr_source: object = field(default=None, repr=False)
    _theta_cov: np.ndarray | None = field(default=None, repr=False)

    def contrast(
        self, c: np.ndarray | str, level: float = 0.95, df_method: str = "satterthwaite"
    ) -> Contrast:
        """Estimate, SE, df, t, p and CI of cᵀβ (c a vector or a coefficient name).

        ``df_method``: ``satterthwaite`` (SE from Φ) or ``kenward-roger`` (SE from the
        adjusted covariance Φ_A, df from Kenward & Roger 1997; us and cs only).
        """
        if isinstance(c, str):
            vec = np.zeros(len(self.names))
            vec[self.names.index(c)] = 1.0
            c = vec
        c = np.asarray(c, dtype=float)
        if df_method == "kenward-roger":
            return self._kenward_roger(c, level)
        if df_method != "satterthwaite":
            raise InputError(f"df method '{df_method}': use satterthwaite or kenward-roger")
        estimate = float(c @ self.beta)
        var = float(c @ self.cov_beta @ c)
        grad = np.einsum("p,kpq,q->k", c, self._dphi, c)
        denom = float(grad @ self._theta_cov @ grad)
        df = 2.0 * var**2 / denom if denom > 0 else np.inf
        se = float(np.sqrt(var))
        t = estimate / se
        q = stats.t.ppf(0.5 + level / 2, df)
        return Contrast(
            estimate,
            se,
            df,
            t,
            float(2 * stats.t.sf(abs(t), df)),
            estimate - q * se,
            estimate + q * se,
        )

    def _kenward_roger(self, c: np.ndarray, level: float) -> Contrast:
        """Kenward & Roger (1997, Biometrics 53:983) for one contrast (ℓ = 1).

        With the covariance written linearly in its parameters (us: the distinct entries of Σ;
        cs: σ_b² J + σ_e² I) the second-derivative term R vanishes, and with Pₖ = −Mₖ,
        Mₖ = Σᵢ XᵢᵀΣᵢ⁻¹Σₖ,ᵢΣᵢ⁻¹Xᵢ, Qₖₗ = Σᵢ XᵢᵀΣᵢ⁻¹Σₖ,ᵢΣᵢ⁻¹Σₗ,ᵢΣᵢ⁻¹Xᵢ and W the inverse of the
        REML expected information ½[Σᵢ tr(Σᵢ⁻¹Σₖ,ᵢΣᵢ⁻¹Σₗ,ᵢ) − 2 tr(ΦQₖₗ) + tr(ΦMₖΦMₗ)]:
        Φ_A = Φ + 2Φ[Σₖₗ Wₖₗ(Qₖₗ − MₖΦMₗ)]Φ; A₁ = A₂ = Σₖₗ Wₖₗ aₖaₗ with
        aₖ = cᵀΦMₖΦc / cᵀΦc; then B, g, c₁…c₃, E*, V*, ρ and m = 4 + 3/(ρ − 1) as in the paper
        (ℓ = 1). Checked against R pbkrtest (compound symmetry = random intercept).
        """
        if self._kr is None and self._kr_source is not None:
            self._kr = self._kr_source()
        if self._kr is None:
            raise InputError("Kenward–Roger is available for the us and cs covariances")
        phi, M, Q, W = self._kr
        var = float(c @ phi @ c)
        adj = (
            phi
            + 2.0
            * phi
            @ np.einsum("kl,klpq->pq", W, Q - np.einsum("kpr,rs,lsq->klpq", M, phi, M))
            @ phi
        )
        var_a = float(c @ adj @ c)
        a = np.array([float(c @ phi @ Mk @ phi @ c) for Mk in M]) / var
        a2 = float(a @ W @ a)
        ell = 1.0
        a1 = a2
        b = (a1 + 6 * a2) / (2 * ell)
        g = ((ell + 1) * a1 - (ell + 4) * a2) / ((ell + 2) * a2)
        denom = 3 * ell + 2 * (1 - g)
        c1, c2, c3 = g / denom, (ell - g) / denom, (ell + 2 - g) / denom
        e_star = 1.0 / (1.0 - a2 / ell)
        v_star = (2.0 / ell) * (1 + c1 * b) / ((1 - c2 * b) ** 2 * (1 - c3 * b))
        rho = v_star / (2.0 * e_star**2)
        df = 4.0 + (ell + 2) / (ell * rho - 1)
        estimate = float(c @ self.beta)
        se = float(np.sqrt(var_a))
        t = estimate / se
        q = stats.t.ppf(0.5 + level / 2, df)
        return Contrast(
            estimate,
            se,
            df,
            t,
            float(2 * stats.t.sf(abs(t), df)),
            estimate - q * se,
            estimate + q * se,
        )


# ----------------------------------------------------------------------- covariance models


def _linear_derivatives(structure: str, T: int) -> np.ndarray | None:
    """∂Σ/∂θ for a parameterisation linear in θ (us: vech Σ; cs: σ_b², σ_e²); None for ar1."""
    if structure == "us":
        rows, cols = np.tril_indices(T)
        d = np.zeros((len(rows), T, T))
        for k, (i, j) in enumerate(zip(rows, cols, strict=True)):
            d[k, i, j] = d[k, j, i] = 1.0
        return d
    if structure == "cs":
        return np.stack([np.ones((T, T)), np.eye(T)])
    return None


def _n_theta(structure: str, T: int) -> int:
    return T * (T + 1) // 2 if structure == "us" else 2


def _sigma_and_derivs(theta: np.ndarray, structure: str, T: int) -> tuple[np.ndarray, np.ndarray]:
    """Σ(θ) (T × T) and ∂Σ/∂θ_k (K × T × T)."""
    if structure == "us":
        L = np.zeros((T, T))
        rows, cols = np.tril_indices(T, -1)
        L[np.diag_indices(T)] = np.exp(theta[:T])
        L[rows, cols] = theta[T:]
        sigma = L @ L.T
        d = np.zeros((len(theta), T, T))
        for k in range(len(theta)):
            dL = np.zeros((T, T))
            if k < T:
                dL[k, k] = L[k, k]
            else:
                dL[rows[k - T], cols[k - T]] = 1.0
            d[k] = dL @ L.T + L @ dL.T
        return sigma, d
    s2, rho = float(np.exp(theta[0])), float(np.tanh(theta[1]))
    drho = 1.0 - rho**2
    if structure == "cs":
        corr = np.full((T, T), rho)
        np.fill_diagonal(corr, 1.0)
        dcorr = np.full((T, T), drho)
        np.fill_diagonal(dcorr, 0.0)
    elif structure == "ar1":
        lag = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
        corr = rho**lag
        with np.errstate(divide="ignore", invalid="ignore"):
            dcorr = np.where(lag > 0, lag * rho ** np.maximum(lag - 1, 0) * drho, 0.0)
    else:
        raise InputError(f"covariance '{structure}': use us, cs or ar1")
    return s2 * corr, np.stack([s2 * corr, s2 * dcorr])


# ----------------------------------------------------------------------- the likelihood


class _Problem:
    """Data grouped by missing-data pattern, so that each pattern's Σ is inverted once."""

    def __init__(
        self,
        y: np.ndarray,
        X: np.ndarray,
        subject: np.ndarray,
        visit: np.ndarray,
        T: int,
        structure: str,
    ):
        self.T, self.structure, self.p = T, structure, X.shape[1]
        self.n_obs = len(y)
        order = np.lexsort((visit, subject))
        y, X, subject, visit = y[order], X[order], subject[order], visit[order]
        starts = np.flatnonzero(np.r_[True, subject[1:] != subject[:-1]])
        bounds = np.r_[starts, len(y)]
        patterns: dict[tuple[int, ...], list[int]] = {}
        for i in range(len(starts)):
            key = tuple(int(v) for v in visit[bounds[i] : bounds[i + 1]])
            if len(set(key)) != len(key):
                raise InputError(
                    "a participant has two rows at one visit; one row per participant and visit"
                )
            patterns.setdefault(key, []).append(i)
        self.n_subjects = len(starts)
        self.groups = []
        for key, members in patterns.items():
            idx = np.array(key)
            rows = np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i in members])
            m = len(idx)
            self.groups.append(
                (idx, X[rows].reshape(len(members), m, self.p), y[rows].reshape(len(members), m))
            )

    def _xtvx(self, sigma: np.ndarray, with_y: bool = False):
        """Σ XᵢᵀΣᵢ⁻¹Xᵢ (and Σ XᵢᵀΣᵢ⁻¹yᵢ, log|V|, the inverses), by pattern with matrix products."""
        xtvx = np.zeros((self.p, self.p))
        xtvy = np.zeros(self.p)
        logdet = 0.0
        parts = []
        for idx, Xg, yg in self.groups:
            S = sigma[np.ix_(idx, idx)]
            c, low = linalg.cho_factor(S)  # LinAlgError when Σ is not positive definite
            Sinv = linalg.cho_solve((c, low), np.eye(len(idx)))
            logdet += len(yg) * 2.0 * np.sum(np.log(np.diag(c)))
            SX = np.matmul(Sinv, Xg)  # n × m × p
            flat_x, flat_sx = Xg.reshape(-1, self.p), SX.reshape(-1, self.p)
            xtvx += flat_x.T @ flat_sx
            if with_y:
                xtvy += flat_sx.T @ yg.ravel()
            parts.append((idx, Xg, yg, Sinv))
        return xtvx, xtvy, logdet, parts

    def evaluate(self, theta: np.ndarray, gradient: bool = False):
        sigma, dsigma = _sigma_and_derivs(theta, self.structure, self.T)
        try:
            xtvx, xtvy, logdet, parts = self._xtvx(sigma, with_y=True)
        except linalg.LinAlgError:
            return (np.inf, None) if gradient else np.inf
        try:
            cf = linalg.cho_factor(xtvx)
        except linalg.LinAlgError:
            raise InputError(
                "the mixed model's design is not of full rank (a visit with one "
                "arm only, or a site with no participants?)"
            ) from None
        beta = linalg.cho_solve(cf, xtvy)
        phi = linalg.cho_solve(cf, np.eye(self.p)) if gradient else None
        quad = 0.0
        grad = np.zeros(len(theta))
        for idx, Xg, yg, Sinv in parts:
            r = yg - Xg @ beta  # n × m
            quad += float(np.sum((r @ Sinv) * r))
            if gradient:
                # ∂/∂θ_k: n·tr(Σ⁻¹Σ_k) − tr(A_k Σₙ XₙΦXₙᵀ) − tr(A_k Σₙ rₙrₙᵀ), A_k = Σ⁻¹Σ_kΣ⁻¹
                dS = dsigma[:, idx][:, :, idx]  # K × m × m
                A = Sinv @ dS @ Sinv
                XP = Xg @ phi  # n × m × p
                G = np.tensordot(XP, Xg, axes=([0, 2], [0, 2]))
                grad += len(yg) * np.tensordot(dS, Sinv.T, axes=([1, 2], [0, 1]))
                grad -= np.tensordot(A, G + r.T @ r, axes=([1, 2], [0, 1]))
        value = (
            logdet
            + quad
            + 2.0 * np.sum(np.log(np.diag(cf[0])))
            + (self.n_obs - self.p) * np.log(2 * np.pi)
        )
        if gradient:
            return value, grad
        return value

    def dphi(self, theta: np.ndarray) -> np.ndarray:
        """∂Φ/∂θ_k = Φ (Σᵢ XᵢᵀΣᵢ⁻¹Σ_{k,i}Σᵢ⁻¹Xᵢ) Φ (the derivative of a matrix inverse), K × p ×
        p."""
        sigma, dsigma = _sigma_and_derivs(theta, self.structure, self.T)
        xtvx, _, _, parts = self._xtvx(sigma)
        phi = np.linalg.inv(xtvx)
        M = np.zeros((len(theta), self.p, self.p))
        for idx, Xg, _yg, Sinv in parts:
            SX = np.matmul(Sinv, Xg).reshape(-1, len(idx), self.p)  # n × m × p
            dS = dsigma[:, idx][:, :, idx]  # K × m × m
            # Σₙ (Σ⁻¹Xₙ)ᵀ Σ_k (Σ⁻¹Xₙ) for every k
            M += np.einsum("nip,kij,njq->kpq", SX, dS, SX, optimize=True)
        return phi @ M @ phi

    def kr_pieces(self, theta: np.ndarray) -> tuple | None:
        """Φ, Mₖ, Qₖₗ and W for Kenward–Roger in the linear parameterisation (see MMRMFit)."""
        D = _linear_derivatives(self.structure, self.T)
        if D is None:
            return None
        sigma, _ = _sigma_and_derivs(theta, self.structure, self.T)
        xtvx, _, _, parts = self._xtvx(sigma)
        phi = np.linalg.inv(xtvx)
        K = len(D)
        M = np.zeros((K, self.p, self.p))
        Q = np.zeros((K, K, self.p, self.p))
        T = np.zeros((K, K))
        for idx, Xg, _yg, Sinv in parts:
            dS = D[:, idx][:, :, idx]  # K × m × m
            SX = np.matmul(Sinv, Xg)  # n × m × p  (Σ⁻¹X)
            B = Sinv @ dS  # K × m × m  (Σ⁻¹Σₖ)
            M += np.einsum("nip,kij,njq->kpq", SX, dS, SX, optimize=True)
            # Qₖₗ = Σₙ (Σ⁻¹X)ᵀ Σₖ Σ⁻¹ Σₗ (Σ⁻¹X)
            mid = np.einsum("kij,ljm->klim", dS, B, optimize=True)
            Q += np.einsum("nip,klij,njq->klpq", SX, mid, SX, optimize=True)
            T += len(Xg) * np.einsum("kij,lji->kl", B, B, optimize=True)
        info = 0.5 * (
            T
            - 2 * np.einsum("pq,klqp->kl", phi, Q)
            + np.einsum("pq,kqr,rs,lsp->kl", phi, M, phi, M, optimize=True)
        )
        return phi, M, Q, np.linalg.inv(info)

    def phi(self, theta: np.ndarray) -> np.ndarray:
        sigma, _ = _sigma_and_derivs(theta, self.structure, self.T)
        return np.linalg.inv(self._xtvx(sigma)[0])

    def beta(self, theta: np.ndarray) -> np.ndarray:
        sigma, _ = _sigma_and_derivs(theta, self.structure, self.T)
        xtvx, xtvy, _, _ = self._xtvx(sigma, with_y=True)
        return np.linalg.solve(xtvx, xtvy)


def _hessian(problem: _Problem, theta: np.ndarray) -> np.ndarray:
    """Central-difference Jacobian of the analytic gradient, symmetrised."""
    h = np.cbrt(np.finfo(float).eps) * np.maximum(1.0, np.abs(theta))
    H = np.empty((len(theta), len(theta)))
    for k in range(len(theta)):
        e = np.zeros(len(theta))
        e[k] = h[k]
        H[k] = (problem.evaluate(theta + e, True)[1] - problem.evaluate(theta - e, True)[1]) / (
            2 * h[k]
        )
    return 0.5 * (H + H.T)


def _start(problem: _Problem) -> np.ndarray:
    """Starting values: OLS residual variances per visit and their correlations."""
    X = np.concatenate([g[1].reshape(-1, problem.p) for g in problem.groups])
    y = np.concatenate([g[2].ravel() for g in problem.groups])
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    T = problem.T
    total = np.zeros((T, T))
    count = np.zeros((T, T))
    for idx, Xg, yg in problem.groups:
        r = yg - Xg @ beta
        total[np.ix_(idx, idx)] += r.T @ r
        count[np.ix_(idx, idx)] += len(yg)
    var = np.diag(total) / np.maximum(np.diag(count), 1)
    var = np.where(var > 0, var, np.mean(var[var > 0]) if np.any(var > 0) else 1.0)
    if problem.structure != "us":
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = (total / np.maximum(count, 1)) / np.sqrt(np.outer(var, var))
        rho = float(np.nanmean(corr[~np.eye(T, dtype=bool)])) if T > 1 else 0.0
        return np.array([np.log(np.mean(var)), np.arctanh(np.clip(rho, -0.5, 0.9))])
    cov = total / np.maximum(count, 1)
    np.fill_diagonal(cov, var)
    try:
        L = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        L = np.diag(np.sqrt(var))
    rows, cols = np.tril_indices(T, -1)
    return np.r_[np.log(np.diag(L)), L[rows, cols]]


def fit_mmrm(
    y: np.ndarray,
    X: np.ndarray,
    subject: np.ndarray,
    visit: np.ndarray,
    T: int,
    names: list[str],
    structure: Structure = "us",
) -> MMRMFit:
    """Fit the MMRM by REML. ``visit`` holds visit ranks 0..T−1; ``subject`` any labels."""
    if structure not in STRUCTURES:
        raise InputError(f"covariance '{structure}': use us, cs or ar1")
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    _, subject_codes = np.unique(np.asarray(subject), return_inverse=True)
    problem = _Problem(y, X, subject_codes, np.asarray(visit, dtype=int), T, structure)
    theta0 = _start(problem)
    result = optimize.minimize(
        lambda th: problem.evaluate(th, True),
        theta0,
        jac=True,
        method="BFGS",
        options={"gtol": 1e-8, "maxiter": 2000},
    )
    theta = result.x
    # Newton polish: BFGS stops on a gradient norm; Newton steps with the exact-curvature
    # (finite-difference) Hessian reach the optimum to machine precision, which the 1e-4
    # agreement with R needs for SEs and df
    H = _hessian(problem, theta)
    for _ in range(8):
        g = problem.evaluate(theta, True)[1]
        if np.max(np.abs(g)) < 1e-10:
            break
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        trial = theta - step
        if not problem.evaluate(trial) <= problem.evaluate(theta) + 1e-9:
            break
        theta = trial
    H = _hessian(problem, theta)
    value, grad = problem.evaluate(theta, True)
    eig = np.linalg.eigvalsh(H)
    converged = bool(np.all(np.isfinite(grad)) and np.max(np.abs(grad)) < 1e-4 and eig.min() > 0)
    theta_cov = 2.0 * np.linalg.pinv(H)
    sigma, _ = _sigma_and_derivs(theta, structure, T)
    fit = MMRMFit(
        names=list(names),
        beta=problem.beta(theta),
        cov_beta=problem.phi(theta),
        sigma=sigma,
        theta=theta,
        structure=structure,
        minus2_reml=float(value),
        converged=converged,
        n_subjects=problem.n_subjects,
        n_obs=problem.n_obs,
        message=""
        if converged
        else f"not converged: max |gradient| {np.max(np.abs(grad)):.2g}, smallest "
        f"Hessian eigenvalue {eig.min():.2g}",
    )
    fit._dphi = problem.dphi(theta)
    fit._kr_source = lambda: problem.kr_pieces(theta)  # computed on the first KR request
    fit._theta_cov = theta_cov
    return fit
