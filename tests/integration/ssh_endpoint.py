"""A private SSH endpoint on 127.0.0.1 for remote libvirt URIs (qemu+ssh://), test-only.

Dropbear (installed for the guest image) serves root logins with a key made for the test.
It runs in its own mount namespace where a temporary home is bound over /root, so the
machine's /root/.ssh is neither read nor written; the client side trusts exactly the
server's host key through its own known_hosts file, passed with libvirt's `command` URI
parameter. Only the dropbear we started (by PID) is stopped.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def ssh_endpoint(tmp: Path) -> Iterator[str]:
    """Yield a qemu+ssh:// URI for this machine's libvirtd through a private dropbear."""
    tmp.mkdir(parents=True, exist_ok=True)
    home = tmp / "home"
    (home / ".ssh").mkdir(parents=True)
    home.chmod(0o700)
    (home / ".ssh").chmod(0o700)
    host_key, client = tmp / "host_key", tmp / "client"
    subprocess.run(["dropbearkey", "-t", "ed25519", "-f", str(host_key)], check=True,
                   capture_output=True)
    pub = subprocess.run(["dropbearkey", "-y", "-f", str(host_key)], check=True,
                         capture_output=True, text=True).stdout
    host_pub = next(line for line in pub.splitlines() if line.startswith("ssh-"))
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client)],
                   check=True)
    auth = home / ".ssh" / "authorized_keys"
    auth.write_text((tmp / "client.pub").read_text())
    auth.chmod(0o600)
    port = _free_port()
    known = tmp / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {' '.join(host_pub.split()[:2])}\n")
    wrapper = tmp / "ssh"
    wrapper.write_text("#!/bin/sh\n"
                       f"exec ssh -o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes "
                       '-o GlobalKnownHostsFile=/dev/null "$@"\n')
    wrapper.chmod(0o755)
    log = (tmp / "dropbear.log").open("w")
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f'mount --bind "{home}" /root && exec dropbear -F -E -s -m -j -k '
         f'-p 127.0.0.1:{port} -r "{host_key}" -P "{tmp}/dropbear.pid"'],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > end:
                    raise RuntimeError("dropbear did not start: "
                                       + (tmp / "dropbear.log").read_text()) from None
                time.sleep(0.05)
        yield (f"qemu+ssh://root@127.0.0.1:{port}/system?keyfile={client}"
               f"&command={wrapper}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
