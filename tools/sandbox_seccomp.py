"""The sandbox's system-call filter: what Python code has no use for and attackers do, compiled to BPF.

The rules are data (`DENIED`, `NAMESPACE_FLAGS`); `program()` compiles them once with libseccomp
(through `pyseccomp`, its ctypes binding) into a classic-BPF program, which the worker loads
into itself before it preloads any module (`prctl(PR_SET_SECCOMP)`), so that every cell inherits it.
Everything not named here is allowed: this is a deny list for a Python runtime, not an allow list.
System calls of another architecture (i386 via int 0x80, x32) kill the process, so the list
cannot be sidestepped by a second syscall table.

It does not load the filter (the worker does, standard library only) and does not decide whether
a missing filter is acceptable (`tools/sandbox_layers.py` probes it, strict mode refuses without).
"""

from __future__ import annotations

import errno
import functools
import os

DENIED: dict[str, tuple[str, ...]] = {
    "kernel keyrings: one run's keys, or the agent's, read by another": ("add_key", "request_key"),
    "io_uring: a second system-call interface that filters do not see": (
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
    ),
    "bpf and perf events: kernel attack surface, side channels": ("bpf", "perf_event_open"),
    "ptrace and cross-process memory access": ("ptrace", "process_vm_readv", "process_vm_writev"),
    "mounts, which a user namespace would otherwise allow": (
        "mount",
        "umount2",
        "pivot_root",
        "chroot",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "move_mount",
        "open_tree",
        "mount_setattr",
        "setns",
    ),
    "kernel modules, kexec, reboot, swap, accounting, the kernel log": (
        "init_module",
        "finit_module",
        "delete_module",
        "kexec_load",
        "kexec_file_load",
        "reboot",
        "swapon",
        "swapoff",
        "acct",
        "syslog",
    ),
    "classic container escapes: file handles, userfaultfd races": ("open_by_handle_at", "userfaultfd"),
}
"""System calls that fail with EPERM, grouped by what they would give the code."""

CLONE_NEWUSER = 0x10000000
"""The namespace flag refused to `unshare` and `clone`: a user namespace grants every capability inside it."""
KEYCTL_GET_KEYRING_ID, KEYCTL_JOIN_SESSION_KEYRING = 0, 1
"""The `keyctl` operations allowed: the session keyring's serial (without creating one), and joining a
fresh, empty, anonymous session keyring (no name)."""
_SESSION = (1 << 64) - 3  # KEY_SPEC_SESSION_KEYRING (-3) as glibc passes it: sign-extended to 64 bits


class SeccompUnavailable(Exception):
    """libseccomp (or its binding) is missing or refused the filter; the message says which."""


@functools.cache
def program() -> bytes:
    """The filter as a classic-BPF program (8-byte instructions), compiled once per process."""
    try:
        import pyseccomp as seccomp
    except (ImportError, RuntimeError, OSError) as exc:  # RuntimeError: the binding found no libseccomp
        raise SeccompUnavailable(f"libseccomp is not available ({exc})") from exc
    try:
        rules = seccomp.SyscallFilter(seccomp.ALLOW)
        rules.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)
        deny = seccomp.ERRNO(errno.EPERM)
        for names in DENIED.values():
            for name in names:
                if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) >= 0:  # not every arch has each
                    rules.add_rule(deny, name)
        for name in ("unshare", "clone"):  # on x86-64 and arm64 alike, the flags are the first argument
            rules.add_rule(deny, name, seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
        # clone3 passes its flags in memory, where a filter cannot look: ENOSYS makes glibc fall back to clone.
        rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
        # keyctl: only JOIN_SESSION_KEYRING(NULL) and GET_KEYRING_ID(session, create=0); each rule denies.
        join, get = KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_GET_KEYRING_ID
        rules.add_rule(deny, "keyctl", seccomp.Arg(0, seccomp.GT, max(join, get)))
        rules.add_rule(deny, "keyctl", seccomp.Arg(0, seccomp.EQ, join), seccomp.Arg(1, seccomp.NE, 0))
        rules.add_rule(deny, "keyctl", seccomp.Arg(0, seccomp.EQ, get), seccomp.Arg(1, seccomp.NE, _SESSION))
        rules.add_rule(deny, "keyctl", seccomp.Arg(0, seccomp.EQ, get), seccomp.Arg(2, seccomp.NE, 0))
        with os.fdopen(os.memfd_create("qwq-seccomp"), "w+b") as out:
            rules.export_bpf(out)
            out.seek(0)
            return out.read()
    except OSError as exc:
        raise SeccompUnavailable(f"libseccomp refused the filter ({exc})") from exc
