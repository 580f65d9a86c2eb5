"""The index folder: the SQLite store (source of truth), FAISS vectors, BM25 segments
(sharded or not), the lock and manifest, and the `Index` facade."""
