"""Nearest-neighbour indexes over a bundle's vectors: FAISS choice, tuning and search; exact GPU search."""
