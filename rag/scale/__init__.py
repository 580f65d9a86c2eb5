"""Scale-out: indexing on Ray (`ray_ingest`), a `Pipeline` for the index's one writer.

Sharded search is part of the index (`rag.index.shards`): `Index.search` uses it.
"""
