"""Errors a user can fix. The CLI prints their message (no traceback) and exits with code 2."""

from __future__ import annotations

import string
from collections.abc import Callable


class FaceGenderError(Exception):
    """A problem with the user's input, data, model or paths, with a message that says what to do."""


class ImageError(FaceGenderError):
    """One image could not be read. Carries the path so callers can name it and carry on."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class OptionError(FaceGenderError):
    """A problem with one or more of a function's parameters. The message is a template that names each parameter as
    a field, e.g. "{out} is a folder; name a file such as {example}", with every other field (paths, values) given
    as a keyword. Each interface words the parameters its own way: the library as the parameter (out), the CLI as
    its flag (--out), the web service as its form field. str() is the library's wording."""

    def __init__(self, template: str, **values: object) -> None:
        self.template = template
        self.values = values
        fields = (name for _, name, _, _ in string.Formatter().parse(template) if name)
        self.options = tuple(dict.fromkeys(name for name in fields if name not in values))
        super().__init__(self.worded(str))

    def worded(self, word: Callable[[str], str]) -> str:
        """The message with each parameter name passed through `word` (for the CLI: out -> --out)."""
        return self.template.format(**{name: word(name) for name in self.options}, **self.values)


class InvalidOption(OptionError):
    """One parameter out of its range or form: its name, what it must be, and the value given."""

    def __init__(self, name: str, requirement: str, value: object) -> None:
        self.name = name
        self.requirement = requirement
        self.value = value
        shown = repr(value) if isinstance(value, str) else value
        super().__init__(f"{{{name}}} {{requirement}}, got {{shown}}", requirement=requirement, shown=shown)
