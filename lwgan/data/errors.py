"""The one error type of lwgan.data: a problem with the user's data, named precisely."""

from __future__ import annotations

from lwgan.errors import UserError


class DataError(UserError):
    """Input data that cannot be used as it is. The message names the file (or folder, or option) and says
    what to do about it."""
