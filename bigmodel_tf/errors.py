"""Errors that the command line reports as one line and exit code 2."""


class UserError(Exception):
    """Bad input from the user: a bad argument, config, dataset, run directory or archive."""
