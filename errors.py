"""The one user-error type of every program; imports nothing.

A `UsageError` is a problem the user can fix (a flag, a file, a record);
cli.run prints it as one line and exits 1, while every other exception keeps
its traceback. Its own module so that configs.py, which cli.py reads its
defaults from, need not import cli.py.
"""


class UsageError(Exception):
    """A problem the user can fix; programs print it without a traceback."""
