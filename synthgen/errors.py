"""The one exception type users see for bad input."""

import re


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


SURROGATE = re.compile("[\ud800-\udfff]")
"""Half of a UTF-16 pair: no character. Python holds a file name's non-UTF-8 byte as one
(``\udce9``); a YAML or JSON ``"\udce9"`` escape makes one."""


def counted(count: int, noun: str) -> str:
    """``1 image``, ``2 images``, ``1 class``, ``2 classes``: a count in a message."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}{'es' if noun.endswith('ss') else 's'}"


def printable(text: str) -> str:
    """``text`` with control and line-breaking characters escaped, so that one problem stays on
    one line whatever names a user's files and keys have; a byte of a file name that is not
    UTF-8 (which Python holds as a lone surrogate) is shown as the byte, ``\\xff``."""
    return "".join(ch if ch.isprintable() else _escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    if "\udc80" <= ch <= "\udcff":
        return f"\\x{ord(ch) - 0xDC00:02x}"
    return ascii(ch)[1:-1]


def unicode_text(text: str) -> str:
    """``text`` with the bytes of non-UTF-8 file names shown as ``\\xff`` and any other lone
    surrogate as ``\\ud83d``, so it can be written as UTF-8 (an HTML page) or drawn (OpenCV ends
    the process on a surrogate); everything else kept as it is."""
    return SURROGATE.sub(lambda m: _escaped(m[0]), text)


def problem_lines(message: str) -> list[str]:
    """The problems in an error message: one per line (only "\n" separates them), made printable."""
    return [printable(line) for line in message.split("\n") if line.strip()]
