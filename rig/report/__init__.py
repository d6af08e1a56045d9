"""Reports from results directories: loading results, comparing metrics with statistics,
the RFC's published numbers, plots, the RFC-layout tables, and the document rendered as
Markdown and HTML. May import every layer below it (the foundation, ``rig.bench`` for
results and metrics, ``rig.vm`` for domain naming); only ``rig.cli`` imports it.
"""
