"""Builds: the pinned inputs of the stack and their outputs, cached outside the repository.

Owns Debian package and source resolution and version ordering (``debian``), the guest
kernel (``kernel``), the patched QEMU (``qemu_source`` resolves and fetches its Debian
source, ``qemu_build`` configures and builds it, ``qemu_verify`` checks the binary) and
its qtests (``qemu_tests``), the guest's balloon module (``guest_module``), the patch
series handling (``patchseries``), the static guest tools (``guest_tools``), the guest
image (``image``, with its ``cpio`` writer and the pure ``image_parsers``), cache keys
(``cachekey``) and the ``bootstrap`` that runs them all. May import only the rig's
foundation modules; nothing here knows about hosts, VMs or benchmarks.
"""
