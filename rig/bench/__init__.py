"""Jobs that run scenarios on a host and what they leave behind: the benchmark ``runner``,
``smoke`` and ``reaction`` jobs, the guest ``workload`` schedule and its ``ebizzy`` parser,
``procstat`` parsers, the autoballoond child (``daemon_proc``), a run's metrics from its raw
files (``run_metrics``), the results layout (``results``) and CI's verdicts
(``reproduction``). May import the foundation, ``rig.build``, ``rig.vm`` and ``rig.host``;
never ``rig.report``.
"""
