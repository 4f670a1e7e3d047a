"""The one exception type for problems a user can fix: bad data, bad configuration, missing model."""


class InputError(Exception):
    """A user-facing error. Its message is one line naming the file, the column and example rows;
    the CLI prints it and exits 2, a flow run fails with it as the state message."""
