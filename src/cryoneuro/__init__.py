"""cryoneuro: simulate, plan, record and evaluate percutaneous cryoablation of peripheral neuromas.

The curated API for notebooks and scripts (each documented, with a runnable example, in
:mod:`cryoneuro.api`)::

    import cryoneuro
    case = cryoneuro.load_case("examples/homogeneous_muscle.toml")
    result = cryoneuro.simulate(case)
    cryoneuro.isotherms(result, [0, -20, -40])

The names are imported lazily (PEP 562 module ``__getattr__``): ``import cryoneuro`` loads no
numerical library, so the command line and the registry start quickly and each layer is imported
only when it is used.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("cryoneuro")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

#: Public name → the module that defines it.
_API = {
    "analyse": "cryoneuro.api",
    "isotherms": "cryoneuro.api",
    "load_case": "cryoneuro.api",
    "meta_analyse": "cryoneuro.api",
    "plan": "cryoneuro.api",
    "score": "cryoneuro.api",
    "simulate": "cryoneuro.api",
    "tip_state": "cryoneuro.api",
}

__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    if name in _API:
        value = getattr(import_module(_API[name]), name)
        globals()[name] = value  # cache: later look-ups do not come back here
        return value
    raise AttributeError(f"module 'cryoneuro' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
