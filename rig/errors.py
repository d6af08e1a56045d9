"""Errors the rig reports to a person: one line, and what to do about it."""


class RigError(Exception):
    """Something failed while running; exit status 1."""

    exit_status = 1


class UsageError(RigError):
    """Bad input, detected before anything on the system is touched; exit status 2."""

    exit_status = 2


def require_root(what: str, euid: int) -> None:
    """UsageError unless running as root (pass os.geteuid())."""
    if euid != 0:
        raise UsageError(f"{what} needs root (it installs packages, cgroups and swap); "
                         "run it with sudo or as root")
