"""A lying guest's side of a run (pure): the script a VM whose scenario says
``lies = "flood"`` runs beside its workload, claiming critical pressure without pause.

It writes to the test driver's debugfs ``msg_flood`` (guest-driver/test-patches/0001: writing
N queues N well-formed critical PRESSURE messages) ``FLOOD_BURST`` messages every
``FLOOD_PERIOD_S`` from the workload's start until the host creates ``STOP_FILE`` in the
guest at its end (``stop_command``; at most ``max_s``), then prints ``@@flood N`` (the
messages it queued; ``@@flooding N`` lines on the way). Without the interface (not the
test driver) it prints ``@@flood-error`` and exits 2: a run whose liar did not lie
measures nothing of what it claims to.
"""

from __future__ import annotations

FLOOD_BURST = 20
FLOOD_PERIOD_S = 0.2
FLOOD_ERROR = "@@flood-error"
STOP_FILE = "/tmp/ab-flood.stop"
#: Where the script is written in the guest (the workload's own script is beside it).
FLOOD_REMOTE = "/tmp/ab-flood.sh"
#: A progress line every this many messages (the host's stream allows only so much
#: silence): "@@flooding N".
FLOOD_REPORT_EVERY = 500


def flood_script(max_s: float) -> str:
    """The guest's shell script: the flood, until STOP_FILE exists or for ``max_s``."""
    seconds = max(1, int(max_s + 0.999))
    return f"""\
rm -f {STOP_FILE}
mount -t debugfs none /sys/kernel/debug 2>/dev/null
dir=
for d in /sys/kernel/debug/virtio*/; do
  if [ -e "$d/msg_flood" ]; then dir=$d; break; fi
done
if [ -z "$dir" ]; then
  echo "{FLOOD_ERROR} no msg_flood under /sys/kernel/debug: the guest needs the test driver"
  exit 2
fi
end=$(( $(date +%s) + {seconds} ))
n=0
while [ ! -e {STOP_FILE} ] && [ "$(date +%s)" -lt "$end" ]; do
  echo {FLOOD_BURST} > "$dir/msg_flood" || exit 2
  n=$((n + {FLOOD_BURST}))
  if [ $((n % {FLOOD_REPORT_EVERY})) -eq 0 ]; then echo "@@flooding $n"; fi
  sleep {FLOOD_PERIOD_S}
done
echo "@@flood $n"
"""


def stop_command() -> str:
    """What the host runs in the guest when the workload is over."""
    return f"touch {STOP_FILE}"


def flooded(output: str) -> int | None:
    """The messages a flood script says it queued (None: it failed or did not finish)."""
    for line in output.splitlines():
        if line.startswith("@@flood "):
            return int(line.split()[1])
    return None


__all__ = ["FLOOD_BURST", "FLOOD_ERROR", "FLOOD_PERIOD_S", "FLOOD_REMOTE",
           "FLOOD_REPORT_EVERY", "STOP_FILE", "flood_script",
           "flooded", "stop_command"]
