"""Jobs that run scenarios on a host and what they leave behind: the benchmark ``runner``,
the benchmark ``matrix`` (every scenario x every mode, resumable), ``smoke`` and
``reaction`` jobs, the guest ``workload`` schedule, the ``ebizzy`` and
``abload`` parsers, ``procstat`` parsers, the autoballoond child (``daemon_proc``), the
host's readings during a run (``sampler``), the checks that make host figures defensible
(``hostcheck``), a run's metrics from its raw files (``run_metrics``), the results layout
(``results``), CI's verdicts (``reproduction``) and the daemon's scale benchmark
(``daemon_scale``, on a simulated host of many VMs: ``scale_sim``). May import the
foundation, ``rig.build``, ``rig.vm`` and ``rig.host``; never ``rig.report``.
"""
