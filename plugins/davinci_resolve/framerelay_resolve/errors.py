"""What the Resolve integration tells the user when it cannot go on: a message and a hint."""


class ResolveError(Exception):
    """One line for the user ("message (hint)"), nothing half done."""

    def __init__(self, message, hint=""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self):
        return f"{self.message} ({self.hint})" if self.hint else self.message


class NotSupported(ResolveError):
    """This Resolve version or edition lacks what the request needs."""


class NoClip(ResolveError):
    """No usable clip is selected or under the playhead."""


class ClipRefused(ResolveError):
    """The clip cannot be sent as it is (a still, retimed, a frame rate that cannot fit)."""


class PlacementFailed(ResolveError):
    """Resolve did not place the take where it was asked to (read back after placing)."""
