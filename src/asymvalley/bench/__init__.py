"""Benchmarks behind ``asymvalley bench``: each returns a plain dict and prints its figures."""
