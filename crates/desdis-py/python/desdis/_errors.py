"""Exception classes of desdis: all derive from DesdisError and from the built-in exception of
their kind, so ``except ValueError`` and ``except desdis.DesdisError`` both catch them."""


class DesdisError(Exception):
    """Base class of every error raised by desdis."""


class DesdisValueError(DesdisError, ValueError):
    """A bad array or argument, or a file whose contents are invalid (corrupt checkpoint,
    undecodable image, forbidden pickle)."""


class DesdisTypeError(DesdisError, TypeError):
    """An argument of the wrong Python type (e.g. a list where a numpy array is needed)."""


class DesdisOSError(DesdisError, OSError):
    """A file that cannot be read."""


class DesdisFileNotFoundError(DesdisOSError, FileNotFoundError):
    """A file that does not exist."""


class DesdisRuntimeError(DesdisError, RuntimeError):
    """The computation failed (e.g. a net that produced non-finite descriptors)."""
