"""The report: figures from stored numbers, ``results.json`` and a self-contained ``report.html``."""
