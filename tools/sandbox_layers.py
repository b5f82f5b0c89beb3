"""The sandbox's isolation layers: what each one stops, and the command line that builds them.

`Layers` records which layers a trial run got on this machine (`tools.sandbox.probe` makes it, by
running a check inside a real sandbox); `command` builds the process chain that every worker
starts in:

    sh (joins the sandbox's cgroup, oom_score_adj 1000) -> bwrap (namespaces, mounts, hostname)
    -> python (caps the scratch's inodes, the one step that needs a capability) -> setpriv (uid 65534,
    no capabilities, no new privileges) -> python (the worker, which loads the seccomp filter and
    joins a fresh session keyring before it preloads any module)

It does not start processes or judge the layers: `tools.sandbox` does both, and refuses to run in
strict mode when a layer is missing.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from tools.registry import ToolError

log = logging.getLogger("tools.sandbox")

NOBODY = 65534
HOSTNAME = "sandbox"
"""The sandbox's own host name (a UTS namespace): the host's name is not visible."""


@dataclass(frozen=True)
class Layers:
    """Which isolation layers a trial run got on this machine, as seen from inside it."""

    bwrap: str | None
    """Path of the bubblewrap binary in use, or None when it is missing or failed."""
    filesystem: bool
    """The home directory and the project are invisible, and / is read-only."""
    network: bool
    """No network interface but loopback."""
    processes: bool
    """A PID namespace: the code sees and signals only its own processes, all with oom_score_adj 1000."""
    unprivileged: bool
    """The code runs as a uid that is not root on the host."""
    detail: str = ""
    """Why a layer could not be had, when one could not."""
    syscalls: bool = False
    """A seccomp filter denies keyrings, new user namespaces, io_uring, bpf, perf, ptrace, mounts, modules."""
    cgroup: int = 0
    """The cgroup version (1 or 2) whose group caps the whole sandbox's memory and processes; 0: none."""
    inodes: bool = False
    """The scratch caps the number of its files, not only their bytes."""
    identity: bool = False
    """The host's name and the kernel command line are hidden."""

    def missing(self) -> list[str]:
        """One line per missing layer, saying what that leaves open."""
        gaps = {
            "filesystem": "the code can read and write your files",
            "network": "the code can reach the network",
            "processes": "the code can see and signal your processes and leave some running, "
            "and the OOM killer may pick the agent before it",
            "unprivileged": "the code runs as root",
            "syscalls": "the code can use kernel keyrings (the agent's and other runs' keys), new user "
            "namespaces (full capabilities, uncapped mounts), io_uring, bpf, perf events and ptrace",
            "cgroup": "memory and process limits bind each process, not the sandbox: several processes, "
            "shared memory or memfd can take the machine's memory, and sandboxes share one process count",
            "inodes": "the scratch can be filled with millions of empty files, whose memory its byte cap misses",
            "identity": "the code can read the host's name and the kernel command line",
        }
        return [f"{name}: {gap}" for name, gap in gaps.items() if not getattr(self, name)]

    def fixes(self) -> list[str]:
        """What to do about each missing layer, without repeats."""
        remedies = {
            "filesystem": "apt-get install bubblewrap (and allow unprivileged user namespaces)",
            "syscalls": "apt-get install libseccomp2 and pip install pyseccomp",
            "cgroup": "run as root (cgroup v1), or in a delegated cgroup v2 scope of its own: "
            "systemd-run --user --scope -p Delegate=yes qwq-agent ...",
            "inodes": "apt-get install util-linux (setpriv, mount)",
        }
        for name in ("network", "processes", "unprivileged", "identity"):
            remedies[name] = remedies["filesystem"]
        gaps = [line.split(":")[0] for line in self.missing()]
        return list(dict.fromkeys(remedies[name] for name in gaps))

    def present(self) -> list[str]:
        """The layers in place, in a word each."""
        names = ("filesystem", "network", "processes", "unprivileged", "syscalls", "inodes", "identity")
        return [n for n in names if getattr(self, n)] + ([f"cgroup v{self.cgroup}"] if self.cgroup else [])


def command(
    bwrap: str | None,
    arguments: list[str],
    disk_bytes: int,
    files: int,
    enter: list[str] | None = None,
    filtered: bool = True,
) -> list[str]:
    """The command line that starts Python inside the layers (only a clean process without bwrap).

    `enter` is the command prefix that joins the cgroup (`sandbox_cgroup.enter_command`), run first.
    `filtered`: the worker will load the seccomp filter, which refuses new user namespaces; without
    it, bwrap's --disable-userns must, and its nested namespace then cannot remount the scratch.
    """
    python = [sys.executable, "-I", "-B", *arguments]
    enter = enter or []
    if bwrap is None:
        return enter + python
    line = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--hostname", HOSTNAME]
    line += ["--unshare-cgroup-try", "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
    # The scratch comes first: a Python installed under /tmp (a CI checkout) is bound on top of it.
    line += ["--size", str(disk_bytes), "--perms", "1777", "--tmpfs", "/tmp"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = "/" + name
        if os.path.islink(path):
            line += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            line += ["--ro-bind", path, path]
    prefixes = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    prefixes = {p for p in prefixes if p != Path("/usr") and Path("/usr") not in p.parents}
    for prefix in sorted(prefixes):
        line += ["--ro-bind", str(prefix), str(prefix)]
    # bwrap copies the modes of the host's parent directories (/root is 0700): let the uid pass.
    parents = {a for p in prefixes for a in p.parents if a not in (Path("/"), Path("/tmp"))}
    for parent in sorted(a for a in parents if not any(a == p or p in a.parents for p in prefixes)):
        line += ["--chmod", "0755", str(parent)]
    line += ["--proc", "/proc", "--tmpfs", "/dev"]
    # A /dev of a few devices, without bwrap's --dev: its devpts makes bwrap nest a second user
    # namespace, which would not own the mounts. Read-only: /dev/shm would be a second scratch,
    # neither capped nor wiped. The mqueue mount lets the worker list (and remove) the POSIX queues
    # a run left behind.
    for device in ("null", "zero", "full", "random", "urandom"):
        line += ["--dev-bind", f"/dev/{device}", f"/dev/{device}"]
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        line += ["--symlink", f"/proc/self/fd/{number}", f"/dev/{name}"]
    line += ["--symlink", "/proc/self/fd", "/dev/fd", "--mqueue", "/dev/mqueue", "--remount-ro", "/dev"]
    if os.path.exists("/proc/cmdline"):  # boot parameters can carry tokens; /dev/null reads empty
        line += ["--dev-bind", "/dev/null", "/proc/cmdline"]
    line += ["--remount-ro", "/", "--chdir", "/tmp", "--clearenv"]
    for key, value in environment("/tmp").items():
        line += ["--setenv", key, value]
    setpriv = shutil.which("setpriv")
    if setpriv is None:  # nothing could drop a capability afterwards: give none, and leave inodes uncapped
        log.debug("setpriv is missing: the scratch's inodes are not capped")
        user = ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--disable-userns"]
        return enter + line[:1] + user + line[1:] + python
    # tmpfs takes nr_inodes only as a mount option, which bwrap does not pass: remount, then drop it all.
    # (Not mount(8): it refuses a uid other than 0, which is what a user namespace gives.)
    remount = [sys.executable, "-I", "-S", "-c", _REMOUNT.format(files=files)]
    drop = [setpriv, "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    if os.geteuid() == 0:
        # bwrap run by root keeps root: the uid drop is setpriv's (RLIMIT_NPROC does not bind uid 0).
        drop[1:1] = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    else:
        user = ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY)]
        # The capability is the sandbox's own user namespace's, for the remount; setpriv drops it.
        line[1:1] = user + (["--cap-add", "CAP_SYS_ADMIN"] if filtered else ["--disable-userns"])
    return enter + line + remount + drop + python


# MS_REMOUNT | MS_NOSUID | MS_NODEV: a remount also resets the mount's flags, so it repeats bwrap's.
_REMOUNT = """
import ctypes, os, sys
ctypes.CDLL(None).mount(b"tmpfs", b"/tmp", None, 32 | 2 | 4, b"nr_inodes={files}")
os.execv(sys.argv[1], sys.argv[1:])
"""


def environment(home: str) -> dict[str, str]:
    """The whole environment of the sandbox: nothing inherited from the agent."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        # One BLAS thread: threads count against the process limit and two cores are common.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }


def private_paths() -> list[str]:
    """Host paths the code must not see: this package, and a few entries of the home and working directories."""
    bound = [Path(prefix) for prefix in (sys.prefix, sys.base_prefix)]
    paths = [Path(__file__).resolve()]
    for directory in {Path.home(), Path.cwd()}:
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            continue
        # Skip the ancestors of the bound Python installation: they exist inside, empty but for it.
        paths += [e for e in entries if not any(e == b or e in b.parents for b in bound)][:3]
    return [str(path) for path in paths]


_warned = False


def admit(layers: Layers, strict: bool) -> None:
    """Fail closed in strict mode when a layer is missing; otherwise say so, once per process."""
    global _warned
    missing = layers.missing()
    if not missing:
        return
    detail = f" ({layers.detail})" if layers.detail else ""
    if strict:
        raise ToolError(
            f"the sandbox refuses to run code in strict mode; missing layers{detail}: " + "; ".join(missing)
        )
    if not _warned:
        _warned = True
        log.warning("Python sandbox: isolation layers missing%s: %s", detail, "; ".join(missing))
