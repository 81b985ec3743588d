"""cryoneuro: simulate, plan, record and evaluate percutaneous cryoablation of peripheral neuromas."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cryoneuro")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
