"""`rig bootstrap`: everything the rig needs, each piece built once per set of inputs.

Order: Debian packages, the pinned guest kernel, QEMU from Debian's source with our
patches, the guest's virtio_balloon module with our patches, the guest image. Each step
is a no-op when its cached output for the current inputs exists.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from rig.build import debian
from rig.build.guest_module import GuestModule, ensure_guest_module, stock_module
from rig.build.guest_tools import ensure_guest_tools
from rig.build.image import GuestImage, ensure_image
from rig.build.kernel import GuestKernel, ensure_kernel
from rig.build.qemu_build import QemuBuild, ensure_qemu
from rig.errors import UsageError, require_root
from rig.layout import Layout
from rig.progress import Progress


@dataclass(frozen=True)
class Stack:
    kernel: GuestKernel
    qemu: QemuBuild
    module: GuestModule
    image: GuestImage  # the default guest: our patched driver
    tools: Path  # static guest tools, in every image's /opt/autoballoon/bin


def image_for(layout: Layout, progress: Progress, stack: Stack, guest_driver: str
              ) -> GuestImage:
    """The guest image running `guest_driver` ("patched", "stock" or "test")."""
    if guest_driver == "patched":
        return stack.image
    if guest_driver == "stock":
        module = stock_module(stack.kernel)
    elif guest_driver == "test":
        module = ensure_guest_module(layout, progress, stack.kernel, test_build=True)
    else:
        raise UsageError(f"unknown guest driver {guest_driver!r}")
    return ensure_image(layout, progress, stack.kernel, module, stack.tools)


def ensure_packages(layout: Layout, progress: Progress) -> None:
    names = [p for group in debian.PACKAGES.values() for p in group]
    with progress.step("Debian packages") as s:
        missing = debian.missing_packages(names)
        if not missing:
            s.cached(f"all {len(names)} installed")
            return
        log = layout.cache / "logs" / "apt.log"
        progress.info(f"installing {len(missing)}: {' '.join(missing)} (log: {log})")
        debian.apt_update(log)
        unavailable = debian.uninstallable(missing)
        if unavailable:
            raise UsageError(
                f"apt cannot install {', '.join(unavailable)}: this rig needs Debian bookworm "
                "main in the apt sources; install them by hand or fix the sources"
            )
        debian.install(missing, log)


def _prepare(layout: Layout, progress: Progress, what: str) -> None:
    require_root(what, os.geteuid())
    for tool in ("apt-get", "apt-cache", "dpkg-query"):
        if shutil.which(tool) is None:
            raise UsageError(f"{tool} not found: the rig bootstraps a Debian bookworm machine; "
                             "install Debian's apt or set up the packages by hand")
    layout.cache.mkdir(parents=True, exist_ok=True)
    layout.cache.chmod(0o755)  # libvirt's QEMU user reads the emulator and image here
    ensure_packages(layout, progress)


def build_image(layout: Layout, progress: Progress) -> GuestImage:
    """`rig image build`: kernel, guest module and image, without QEMU."""
    _prepare(layout, progress, "rig image build")
    kernel = ensure_kernel(layout, progress)
    module = ensure_guest_module(layout, progress, kernel)
    return ensure_image(layout, progress, kernel, module, ensure_guest_tools(layout, progress))


def bootstrap(layout: Layout, progress: Progress) -> Stack:
    _prepare(layout, progress, "rig bootstrap")
    kernel = ensure_kernel(layout, progress)
    qemu = ensure_qemu(layout, progress)
    module = ensure_guest_module(layout, progress, kernel)
    tools = ensure_guest_tools(layout, progress)
    image = ensure_image(layout, progress, kernel, module, tools)
    return Stack(kernel, qemu, module, image, tools)
