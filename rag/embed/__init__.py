"""Turning text into vectors: the embedder protocol and the packaged sentence-transformers model."""
