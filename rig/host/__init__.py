"""The emulated host on this machine: ``lifecycle`` (``rig host up``/``down`` with a
record of every change), the partition ``cgroups``, the ``swap`` file, the libvirt
``daemons`` and the accelerator choice (``accel``). May import the foundation, ``rig.build``
and ``rig.vm`` (``host down`` destroys our domains); never ``rig.bench`` or ``rig.report``.
"""
