"""Reports from results directories: loading results, comparing metrics with statistics,
the RFC's published numbers, plots, the RFC-layout tables, the document rendered as
Markdown and HTML, a benchmark matrix's report (``matrix``) and its export for shipping
(``export``). May import every layer below it (the foundation, ``rig.bench`` for
results and metrics, ``rig.vm`` for domain naming); only the cli (``rig.cli``,
``rig.cli_matrix``) imports it.
"""
