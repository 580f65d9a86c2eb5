"""Search: fusing dense and BM25 scores, and widening chunks into passages.

It ranks what it is handed (the protocols in `fusion` and `passages`) and imports no
index module: `Index.search` hands it the index's own FAISS, BM25 and store.
"""
