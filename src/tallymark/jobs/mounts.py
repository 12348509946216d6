"""A private mount namespace per job, with the job's root bound at /opt/ml (Linux, ``unshare``).

Why: SageMaker scripts (AWS's examples, the reference notebook's preprocess.py) hard-code
``/opt/ml/...`` paths. Each job gets its own view of /opt/ml — its root — so two jobs never see
each other's files and the machine's real /opt/ml is never created or touched.

How: ``unshare --mount --propagation private`` as root, ``unshare --user --map-root-user --mount``
otherwise (Python 3.11 has no ``os.unshare``), running a small ``sh`` script before the job's
command: when /opt/ml does not exist, /opt is rebuilt in the namespace (the real /opt is bound
aside, a tmpfs is mounted on /opt, each of its entries is bound back, /opt/ml is created in the
tmpfs); then the root is bound at /opt/ml, processing paths outside /opt/ml are bound at their
places, and the command is exec'd (it keeps the pid, so signals to its group reach it). Mounts
made in the namespace vanish with it.

Where namespaces are unavailable, :func:`unavailable_reason` says why; the runner then runs the
script with the SM_* variables pointing into the root, and fails a job whose script mentions
/opt/ml with that reason.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["unavailable_reason", "unshare_prefix", "wrap"]

# $1 root, $2 stash (a folder of the root, for the real /opt), $3 cwd in the namespace,
# $4 number of extra (source, target) pairs, then the pairs, then the command.
_SETUP = r"""
die() { echo "tallymark: cannot give this job its /opt/ml: $*" >&2; exit 125; }
root=$1; stash=$2; cwd=$3; n=$4; shift 4
if [ ! -d /opt/ml ]; then
  [ -d /opt ] || mkdir /opt || die "no /opt and cannot create it"
  mount --bind /opt "$stash" || die "bind /opt aside"
  mount -t tmpfs -o mode=755 tallymark-opt /opt || die "tmpfs on /opt"
  for e in "$stash"/* "$stash"/.[!.]* "$stash"/..?*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    b=${e##*/}
    if [ -L "$e" ]; then cp -P "$e" "/opt/$b" || die "link /opt/$b"
    elif [ -d "$e" ]; then mkdir "/opt/$b" && mount --rbind "$e" "/opt/$b" || die "bind /opt/$b"
    else : > "/opt/$b" && mount --bind "$e" "/opt/$b" || die "bind /opt/$b"; fi
  done
  mkdir /opt/ml || die "mkdir /opt/ml"
fi
mount --bind "$root" /opt/ml || die "bind the job root at /opt/ml"
while [ "$n" -gt 0 ]; do
  mkdir -p "$2" || die "create $2"
  mount --bind "$1" "$2" || die "bind $2"
  shift 2; n=$((n - 1))
done
cd "$cwd" || die "cd $cwd"
exec "$@"
"""


def unshare_prefix() -> list[str]:
    exe = shutil.which("unshare") or "unshare"
    if os.geteuid() == 0:
        return [exe, "--mount", "--propagation", "private"]
    return [exe, "--user", "--map-root-user", "--mount", "--propagation", "private"]


def unavailable_reason() -> str | None:
    """None when this machine can give jobs a private mount namespace, else why not.

    The client setting ``job_namespace`` (``TALLYMARK_JOB_NAMESPACE=0``) turns namespaces off (to
    run as where they are unavailable)."""
    from tallymark.settings import ClientSettings

    if not ClientSettings.from_env().job_namespace:
        return "private mount namespaces are turned off (TALLYMARK_JOB_NAMESPACE=0)"
    return _probe()


@functools.lru_cache(maxsize=1)
def _probe() -> str | None:
    """Whether this machine can make a private mount namespace (tried once per process)."""
    if not os.path.exists("/proc/self/ns/mnt"):
        return "this system has no Linux mount namespaces"
    if shutil.which("unshare") is None:
        return "the `unshare` program (util-linux) is not installed"
    if shutil.which("sh") is None:
        return "no /bin/sh to set up the namespace"
    try:
        done = subprocess.run(
            [*unshare_prefix(), "sh", "-c", "mount -t tmpfs none /tmp 2>&1"],
            capture_output=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`unshare` could not run: {exc}"
    if done.returncode != 0:
        err = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        return f"`{' '.join(unshare_prefix())}` is not permitted here: {err[-1] if err else done.returncode}"
    return None


def wrap(cmd: list[str], root: Path, cwd: str, extra: list[tuple[Path, str]]) -> list[str]:
    """``cmd`` run in a private mount namespace with ``root`` at /opt/ml (and ``extra`` bound)."""
    stash = root / ".mounts" / ".opt"
    stash.mkdir(parents=True, exist_ok=True)
    pairs: list[str] = []
    for src, target in extra:
        pairs += [str(src), target]
    return [
        *unshare_prefix(),
        "sh",
        "-c",
        _SETUP,
        "tallymark-job",
        str(root),
        str(stash),
        cwd,
        str(len(extra)),
        *pairs,
        *cmd,
    ]
