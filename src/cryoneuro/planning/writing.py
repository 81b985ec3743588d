"""Write a computed plan to a folder: ``plan.json``, the report, its figures and volumes.

Why a module of its own: :func:`cryoneuro.planning.pipeline.plan` computes and returns a
:class:`~cryoneuro.planning.plan.Plan` without touching the disk (a notebook can inspect,
``summary()`` and ``plot()`` it); writing is this separate step, so a plan is written once,
where the caller chooses, and a failed plan leaves no folder behind.

Files (names as before the split, so the registry's plan upload and bundles are unchanged):
``plan_overlay.png`` and ``nerve_profile.png`` (figures), ``image.nii.gz``,
``min_temperature_c.nii.gz`` and the iceball labels (:mod:`cryoneuro.planning.volumes`),
``plan.json``, ``report.html`` and ``report.pdf`` (:mod:`cryoneuro.planning.report`), and
``plan_bundle.zip``. ``plan.files`` lists them.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from cryoneuro.errors import InputError
from cryoneuro.planning.plan import Plan

OVERLAY_PNG = "plan_overlay.png"
NERVE_PROFILE_PNG = "nerve_profile.png"


def write_plan(plan: Plan, out_dir: str | Path) -> Plan:
    """Write a freshly computed plan and its report to ``out_dir``.

    Parameters
    ----------
    plan : cryoneuro.planning.plan.Plan
        From :func:`cryoneuro.planning.pipeline.plan` (it carries the simulation the figures and
        volumes are drawn from).
    out_dir : str or pathlib.Path
        Folder to write into (created if missing; files of the same names are replaced).

    Returns
    -------
    cryoneuro.planning.plan.Plan
        The same plan, with ``files`` (name → path) filled in; ``plan.json`` includes them.

    Raises
    ------
    cryoneuro.errors.InputError
        When the plan has no simulation attached (read back from JSON): the figures and volumes
        cannot be drawn from its numbers alone.
    """
    from cryoneuro.planning.figures import plot_plan_overlays
    from cryoneuro.planning.report import REPORT_HTML, REPORT_PDF, write_report
    from cryoneuro.planning.volumes import BUNDLE_NAME, bundle_plan, write_plan_volumes

    art = plan._artifacts
    if art is None:
        raise InputError(
            f"plan '{plan.case}': no simulation attached (a plan read from JSON keeps only its "
            "numbers); write the plan returned by plan() instead"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    overlay = plot_plan_overlays(
        art.result, art.image, art.structures, out / OVERLAY_PNG, title=art.title
    )
    profile_png = out / NERVE_PROFILE_PNG
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    art.nerve_profile.plot(ax=fig.add_subplot())
    fig.savefig(profile_png, dpi=110)
    # the image and iceball as NIfTI for viewers (the registry's Niivue view), then one bundle
    volumes = write_plan_volumes(out, art.image, art.result.min_temperature_c, art.result.grid)
    plan.files = {
        "report_html": str(out / REPORT_HTML),
        "report_pdf": str(out / REPORT_PDF),
        "overlay": str(overlay),
        "nerve_profile": str(profile_png),
        **{name.removesuffix(".nii.gz"): str(path) for name, path in volumes.items()},
        "bundle": str(out / BUNDLE_NAME),
    }
    plan.save(out / "plan.json")
    write_report(plan, out, {"overlay": overlay, "nerve profile": profile_png})
    bundle_plan(out)
    return plan
