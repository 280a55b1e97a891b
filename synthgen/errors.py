"""The one exception type users see for bad input."""


class SynthgenError(Exception):
    """Base class for every error synthgen raises on purpose."""


class SpecError(SynthgenError):
    """A scene spec, a CLI override or an asset it names is invalid.

    The message always names where: ``file:line:col key.path: what is wrong``,
    or the asset file that could not be used.
    """
