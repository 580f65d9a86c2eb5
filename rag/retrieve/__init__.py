"""Search: fusing dense and BM25 scores, and widening chunks into passages."""
