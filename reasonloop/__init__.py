"""reasonloop: synthesize, solve, verify, train and evaluate verifiable reasoning."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("reasonloop")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+local"
