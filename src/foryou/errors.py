"""Exceptions that tell the user what to fix. The CLI and the service map them to clear messages / 4xx."""


class ForyouError(Exception):
    """Base class: every error foryou raises on purpose."""


class ConfigError(ForyouError):
    """The run configuration is invalid (unknown key, wrong type, bad value); the message names the key."""


class DataFileError(ForyouError):
    """An input file is missing, unreadable or in the wrong format; the message names the path."""


class MissingColumnError(DataFileError):
    """A required column is absent from an input file; the message names the column and the file."""


class EmptyDatasetError(ForyouError):
    """A cleaning or filtering step removed everything; the message names the step."""


class UnknownIdError(ForyouError, KeyError):
    """A user or item id is not known to the model; the message lists the ids."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class NotFittedError(ForyouError):
    """A model was asked to recommend before fit() or load()."""
