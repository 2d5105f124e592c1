"""Answering queries: query terms, pure ranking functions, and the Searcher."""
