"""Builds: the pinned inputs of the stack and their outputs, cached outside the repository.

Owns Debian package and source resolution (``debian``), the guest kernel (``kernel``), the
patched QEMU (``qemu_build``) and its qtests (``qemu_tests``), the guest's balloon module
(``guest_module``), the patch series handling (``patchseries``), the static guest tools
(``guest_tools``), the guest image (``image``), cache keys (``cachekey``) and the
``bootstrap`` that runs them all. May import only the rig's foundation modules; nothing
here knows about hosts, VMs or benchmarks.
"""
