"""The one exception type for a user's mistake: the command line prints its message on one line."""


class SeglibError(Exception):
    """Bad input a user can fix (path, value, config). The message names the file/value and what to do."""
