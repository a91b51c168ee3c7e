"""Errors a user can fix. The CLI prints their message (no traceback) and exits with code 2."""


class FaceGenderError(Exception):
    """A problem with the user's input, data, model or paths, with a message that says what to do."""


class ImageError(FaceGenderError):
    """One image could not be read. Carries the path so callers can name it and carry on."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class InvalidOption(FaceGenderError):
    """A parameter out of its range or form. It carries the parameter's name, so each interface words it its own
    way: the CLI as a flag (--abstain-band), the web service as the form field (abstain_band)."""

    def __init__(self, name: str, requirement: str, value: object) -> None:
        self.name = name
        self.requirement = requirement
        self.value = value
        super().__init__(self.worded(name))

    def worded(self, name: str) -> str:
        shown = repr(self.value) if isinstance(self.value, str) else self.value
        return f"{name} {self.requirement}, got {shown}"
