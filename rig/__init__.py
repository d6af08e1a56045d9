"""The rig: builds the stack, emulates a memory-limited host, boots VMs, runs scenarios and
reports on them.

Layers, lowest first; a module imports only its own subpackage, the layers below it and
the foundation (tests/unit/test_architecture.py enforces it):

- foundation (modules in rig/ itself but the cli's): ``errors``, ``layout``, ``proc``,
  ``progress`` and ``scenario`` (the scenario format every layer reads); they import
  nothing else of rig;
- ``rig.build``: pinned inputs and their cached builds (QEMU, guest kernel and module,
  guest image, guest tools, QEMU's qtests);
- ``rig.vm``: one VM under libvirt (domain XML, start/stop, SSH, console, QMP events);
- ``rig.host``: the emulated host (daemons, partition cgroup, swap, accelerator); ``host
  down`` destroys the VMs of ours still in it, so it sits above ``rig.vm``;
- ``rig.bench``: jobs run on a host (benchmark runs, smoke, reaction), the workload and
  their raw files, parsers and metrics;
- ``rig.report``: reports from results directories;
- ``rig.cli``, ``rig.cli_matrix`` (``rig matrix``, ``rig matrix-report``) and
  ``rig.cli_scale`` (``rig daemon-scale``): the ``rig`` command, on top of everything.
"""
