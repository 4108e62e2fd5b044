"""Benchmarks: measured comparisons that show the search is worth it (``make bench``).

One module per figure; ``python -m benchmarks`` runs them and writes ``benchmarks/RESULTS.md``
and ``benchmarks/results.json``. Not unit tests: a full run takes tens of minutes.
"""
