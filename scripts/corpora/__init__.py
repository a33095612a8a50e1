"""Corpus fetchers, one module per configuration format (see scripts/fetch-corpora.py)."""
