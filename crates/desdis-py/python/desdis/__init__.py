"""Learned local image descriptors on numpy arrays: :class:`Describer` (patches to
descriptors, images to features), :func:`match` and :func:`verify`."""

from ._desdis import Describer, __version__, match, verify
from ._errors import (
    DesdisError,
    DesdisFileNotFoundError,
    DesdisOSError,
    DesdisRuntimeError,
    DesdisTypeError,
    DesdisValueError,
)

__all__ = [
    "Describer",
    "match",
    "verify",
    "DesdisError",
    "DesdisValueError",
    "DesdisTypeError",
    "DesdisOSError",
    "DesdisFileNotFoundError",
    "DesdisRuntimeError",
    "__version__",
]
