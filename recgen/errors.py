"""Exception types raised by recgen.

One type per kind of failure, so callers can catch precisely and tests can assert the
kind. Every message names the offending file, line, column, field or id and says what
was expected.
"""

from __future__ import annotations


class RecgenError(Exception):
    """Base class of every error recgen raises on purpose."""


class ConfigError(RecgenError, ValueError):
    """A configuration value is invalid (raised at config construction time)."""


# --- data ---------------------------------------------------------------------------
class DataError(RecgenError):
    """Base class for problems with input data."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """An expected input file or folder does not exist."""


class UnknownFormatError(DataError):
    """The dataset name or file format is not one recgen knows."""


class MissingColumnError(DataError):
    """A required column/field is absent from an input file."""


class ParseError(DataError):
    """A line or value of an input file cannot be parsed."""


class EncodingError(DataError):
    """An input file is not in the expected text encoding."""


class EmptyDatasetError(DataError):
    """No interactions are left (after reading or after filtering)."""


# --- ids and lookups -----------------------------------------------------------------
class UnknownIdError(RecgenError, KeyError):
    """A user or item id is not in the dataset / catalogue."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class UnknownUserError(UnknownIdError):
    """A user id is not known."""


class UnknownItemError(UnknownIdError):
    """An item id is not in the catalogue."""


# --- serving -------------------------------------------------------------------------
class RequestError(RecgenError, ValueError):
    """A recommendation request cannot be served as asked (k out of range, empty history)."""


class RequestTypeError(RecgenError, TypeError):
    """A recommendation request argument has the wrong type."""


# --- retrieval -----------------------------------------------------------------------
class RetrievalError(RecgenError):
    """Candidate generation cannot satisfy a request (e.g. N too large, empty history)."""


class IndexMismatchError(RetrievalError):
    """An index and an item table / retriever disagree (size, ids or dimension)."""


# --- models and decoding -------------------------------------------------------------
class ModelNotFoundError(RecgenError, FileNotFoundError):
    """A model id, folder or URI cannot be found."""


class GrammarError(RecgenError):
    """An output cannot be parsed, or the grammar cannot be built for a tokenizer."""
