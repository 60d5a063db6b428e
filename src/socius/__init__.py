"""socius: an open-source backend for social and communication apps."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("socius")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
