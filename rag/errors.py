"""The errors rag raises. Every message says what to do next."""

from __future__ import annotations


class RagError(Exception):
    """Base of every error rag raises on purpose; the CLI and UI show its message as is."""


class IndexNotFoundError(RagError):
    """No index at the given path."""


class ModelMismatchError(RagError):
    """The index was built with another embedding model or dimension."""


class IndexCorruptError(RagError):
    """The index files cannot be read."""


class IndexLockedError(RagError):
    """Another process is writing to the index."""


class IndexWriteError(RagError):
    """The index could not be written (disk full, read-only folder); the message says what
    state was left (before the store's commit: the previous index; after it: the new one)."""


class InputError(RagError):
    """A path, question or option the user gave cannot be used."""


class LLMError(RagError):
    """The LLM endpoint failed or answered something unusable."""


class EmptyIndexError(InputError):
    """The index holds no articles yet; the message says how to add some."""
