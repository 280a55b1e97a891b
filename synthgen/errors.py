"""The one exception type users see for bad input."""


class SynthgenError(Exception):
    """Base class for every error synthgen raises on purpose."""


class SynthgenWarning(UserWarning):
    """Something synthgen worked around that the user should know about (a texture it could
    not find, say). The CLI shows each once as a ``warning:`` line."""


class SpecError(SynthgenError):
    """A scene spec, a CLI override or an asset it names is invalid.

    The message always names where: ``file:line:col key.path: what is wrong``,
    or the asset file that could not be used.
    """


def printable(text: str) -> str:
    """``text`` with control and line-breaking characters escaped, so that one problem stays on
    one line whatever names a user's files and keys have."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def problem_lines(message: str) -> list[str]:
    """The problems in an error message: one per line (only "\n" separates them), made printable."""
    return [printable(line) for line in message.split("\n") if line.strip()]
