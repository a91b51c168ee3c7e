"""Errors a user can fix. The CLI prints their message (no traceback) and exits with code 2."""


class FaceGenderError(Exception):
    """A problem with the user's input, data, model or paths, with a message that says what to do."""


class ImageError(FaceGenderError):
    """One image could not be read. Carries the path so callers can name it and carry on."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")
