"""Exceptions that carry a message meant for the user (the CLI prints it on one line)."""


class FeatteamError(Exception):
    """Base class of the errors featteam reports to its user."""


class DataError(FeatteamError, ValueError):
    """The input table cannot be used as it is; the message says why and what to do."""
