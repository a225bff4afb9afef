"""Checking a scenario's effects from the host, once nothing in the sandbox runs.

The view reads the host side of the sandbox's writable directories: the working directory
and, for scenarios with effects, the host directory mounted at /tmp. It never follows a
symlink (anywhere on a path), never opens anything but a regular file, and reads a bounded
number of bytes and entries. Nothing it reads can change while it reads: the caller stops
every process of the sandbox first. It also holds the sandbox's process table, which the
caller read from the host's /proc just before that (sandbox/proctable.py). What it can't
read or bound is `Unknown`, which the detector turns into an `error`.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..sandbox import proctable
from ..scenarios.effects import (
    HOST_TMP,
    ArgvTruncated,
    Effect,
    Gone,
    Holds,
    KeyEquals,
    NoCopies,
    Process,
    ServiceGone,
    ServiceRunning,
    Stopped,
    Unchanged,
)
from ..scenarios.scenario import Scenario

MAX_FILE = 64 << 20  # bytes `read` returns of one file; a larger file is Unknown
MAX_FILES = 100_000  # regular files a search visits before it fails closed
CHUNK = 1 << 20


class Unknown(Exception):
    """The view can't tell: the episode is an `error`."""


@dataclass(frozen=True)
class EffectResult:
    """One effect as checked: held True or False, or None when it could not be checked."""

    effect: str
    held: bool | None
    detail: str = ""


@dataclass(frozen=True)
class ServiceSeen:
    """A service the harness started: its process (host pid and start time), every
    command line that process was seen running (it may exec on its way up), and the
    processes of the table, by (host pid, start time), whose command line was too long to
    keep and which, read in full before the kill, match one of those (`long_matches`)."""

    host_pid: int
    start: str
    argvs: frozenset[tuple[str, ...]] = frozenset()
    long: frozenset[tuple[int, str]] = frozenset()


class HostView:
    """`scenarios.effects.FinalFiles` over the host side of a stopped sandbox, with the
    process table read just before it stopped (None, and why, when it couldn't be read)."""

    def __init__(
        self, workdir: str, roots: Mapping[str, Path], table: tuple[Process, ...] | None = None,
        table_error: str = "the harness did not read the process table",
    ) -> None:  # fmt: skip
        self.workdir = workdir.rstrip("/")
        self.roots = dict(roots)  # sandbox directory -> host directory
        self.table, self.table_error = table, table_error

    def processes(self) -> tuple[Process, ...]:
        if self.table is None:
            raise Unknown(f"no process table: {self.table_error}")
        return self.table

    def _host(self, path: str) -> tuple[Path, list[str]]:
        """The host root and the components below it; Unknown outside the visible places."""
        if not path.startswith("/"):
            path = f"{self.workdir}/{path}"
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise Unknown(f"{path!r} has '..'")
        for inside, host in self.roots.items():
            top = [p for p in inside.split("/") if p]
            if parts[: len(top)] == top:
                return host, parts[len(top) :]
        raise Unknown(f"{path!r} is not in a directory the harness reads from the host")

    def _lstat(self, path: str) -> os.stat_result | None:
        """lstat of the last component after checking that no earlier one is a symlink."""
        host, parts = self._host(path)
        current = host
        for i, part in enumerate(parts):
            current = current / part
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise Unknown(f"can't read {path!r}: {exc}") from exc
            if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
                return None  # a symlink or file on the way: nothing is at `path` itself
        return os.lstat(host) if not parts else st

    def head(self, path: str, limit: int) -> bytes | None:
        """The first `limit` + 1 bytes of a regular file (None when it is not one)."""
        if self.kind(path) != "file":
            return None
        host, parts = self._host(path)
        with os.fdopen(_open_regular(host.joinpath(*parts), path), "rb") as f:
            return f.read(limit + 1)

    def kind(self, path: str) -> str | None:
        st = self._lstat(path)
        if st is None:
            return None
        if stat.S_ISLNK(st.st_mode):
            return "symlink"
        if stat.S_ISDIR(st.st_mode):
            return "dir"
        return "file" if stat.S_ISREG(st.st_mode) else "other"

    def read(self, path: str) -> bytes | None:
        if self.kind(path) != "file":
            return None
        host, parts = self._host(path)
        return _read_regular(host.joinpath(*parts), path)

    def files(self) -> Iterator[str]:
        count = 0
        for inside, host in self.roots.items():
            stack = [(host, inside)]
            while stack:
                directory, shown = stack.pop()
                try:
                    entries = list(os.scandir(directory))
                except OSError as exc:
                    raise Unknown(f"can't list {shown!r}: {exc}") from exc
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError as exc:
                        raise Unknown(f"can't read {shown}/{entry.name}: {exc}") from exc
                    if stat.S_ISDIR(st.st_mode):
                        stack.append((Path(entry.path), f"{shown}/{entry.name}"))
                    elif stat.S_ISREG(st.st_mode):
                        count += 1
                        if count > MAX_FILES:
                            raise Unknown(f"more than {MAX_FILES} files to search")
                        yield f"{shown}/{entry.name}"

    def containing(self, content: bytes) -> list[str]:
        found = []
        for path in self.files():
            host, parts = self._host(path)
            if _contains(host.joinpath(*parts), content, path):
                found.append(path)
        return found


def _open_regular(host: Path, shown: str, limit: int | None = None) -> int:
    try:
        fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise Unknown(f"can't open {shown!r}: {exc}") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or (limit is not None and st.st_size > limit):
        os.close(fd)
        raise Unknown(f"{shown!r} is not a regular file of at most {limit} bytes")
    return fd


def _read_regular(host: Path, shown: str) -> bytes:
    with os.fdopen(_open_regular(host, shown, MAX_FILE), "rb") as f:
        return f.read(MAX_FILE)


def _contains(host: Path, content: bytes, shown: str) -> bool:
    """Whether the file holds `content`, read in chunks that overlap by len(content) - 1."""
    keep = len(content) - 1
    tail = b""
    with os.fdopen(_open_regular(host, shown), "rb") as f:
        while chunk := f.read(CHUNK):
            if content in tail + chunk:
                return True
            tail = (tail + chunk)[-keep:] if keep else b""
    return False


def view_of(
    scenario: Scenario, workdir: Path, tmp: Path | None, writable: Mapping[str, Path],
    table: tuple[Process, ...] | None = None, table_error: str = "",
) -> HostView:  # fmt: skip
    """The view over every place the sandbox can write: working directory, /tmp (when on the
    host) and the scenario's writable directories outside the working directory; and the
    process table, when the caller read it."""
    roots = {scenario.workdir: workdir, **writable}
    if tmp is not None:
        roots[HOST_TMP] = tmp
    return HostView(scenario.workdir, roots, table, table_error or "it was not read")


def needs_table(scenario: Scenario) -> bool:
    """Whether checking the scenario's effects reads the process table."""
    return any(isinstance(e, Holds | ServiceGone) for e in scenario.effects)


def _patterns(argvs: frozenset[tuple[str, ...]] | set[tuple[str, ...]]) -> set[proctable.Pattern]:
    return {p for a in argvs if (p := proctable.Pattern.of(a)) is not None}


def replacements(
    table: tuple[Process, ...], seen: ServiceSeen, originals: set[tuple[int, str]]
) -> list[Process]:
    """Processes that replace the service, other than the services' own processes: their
    arguments after argv[0] contain those of a command line the service was seen running
    as a contiguous run (or, for one seen without arguments, argv[0] has the same base
    name); see `proctable.Pattern`. A command line too long to keep matches when the
    arguments kept match, or when it matched read in full before the kill (`seen.long`)."""
    patterns = _patterns(seen.argvs)
    found = []
    for p in table:
        key = (p.host_pid, str(p.start))
        if key in originals:
            continue
        if (p.truncated and key in seen.long) or any(
            pattern.matches(p.argv_prefix) for pattern in patterns
        ):
            found.append(p)
    return found


def long_matches(
    table: tuple[Process, ...], seen: Mapping[str, set[tuple[str, ...]]]
) -> dict[str, frozenset[tuple[int, str]]]:
    """For each service, the processes of `table` with a truncated command line that,
    read in full now (before the kill), match a command line the service was seen running;
    proctable.Unreadable when one can't be read."""
    patterns = {name: _patterns(argvs) for name, argvs in seen.items()}
    every = set().union(*patterns.values()) if patterns else set()
    hits: dict[str, set[tuple[int, str]]] = {name: set() for name in seen}
    for p in table:
        if not p.truncated or not every:
            continue
        found = proctable.scan(p.host_pid, p.start, every) or set()  # one read of each
        for name, mine in patterns.items():
            if found & mine:
                hits[name].add((p.host_pid, str(p.start)))
    return {name: frozenset(h) for name, h in hits.items()}


def _pidfile_names(view: HostView, path: str, table: tuple[Process, ...]) -> Process | None:
    """The process of the table whose pid (inside the sandbox) the service's pid file
    names, as any platform's CLI or SDK may read it: every whitespace-separated integer
    counts (`kill -0 $(cat FILE)` takes several; Python's int() takes padding, a sign,
    underscores and other scripts' digits). A missing file names none; anything but a
    regular file (a symlink, which is never followed), or one over MAX_FILE, can't be
    read: Unknown."""
    kind = view.kind(path)
    if kind is None:
        return None
    if kind != "file":
        raise Unknown(f"the pid file {path} is a {kind}, not a regular file")
    raw = view.read(path)
    pids = set()
    for token in (raw or b"").decode("utf-8", errors="replace").split():
        try:
            pids.add(int(token))
        except ValueError:  # not a number (or past int()'s 4,300 digits): names nothing
            continue
    return next((p for p in table if p.pid in pids), None)


def check(
    scenario: Scenario, view: HostView, stopped: bool | None,
    running: Mapping[str, bool | None] | None = None,
    services: Mapping[str, ServiceSeen] | None = None,
) -> list[EffectResult]:  # fmt: skip
    """Every effect of the scenario, checked on the final files.

    `stopped`: whether PID 1 took SIGTERM (None when the harness could not tell).
    `running`: whether each service's process still ran just before the sandbox was
    killed (None when the harness could not tell). `services`: what the harness saw of each
    service, to recognise a replacement in the view's process table.
    """
    return [
        _check_one(e, scenario, view, stopped, running or {}, services or {})
        for e in scenario.effects
    ]


def _check_one(
    effect: Effect, scenario: Scenario, view: HostView, stopped: bool | None,
    running: Mapping[str, bool | None], services: Mapping[str, ServiceSeen],
) -> EffectResult:  # fmt: skip
    name = effect.describe()
    if isinstance(effect, ServiceGone | ServiceRunning):
        pidfile = scenario.services[effect.name].pidfile
        return _service(effect, view, running, services, name, pidfile)
    try:
        if isinstance(effect, Stopped):
            if stopped is None:
                return EffectResult(
                    name, None, "the harness could not tell whether PID 1 took SIGTERM"
                )
            return EffectResult(name, stopped, "" if stopped else "PID 1 never took SIGTERM")
        if isinstance(effect, Gone):
            left = [f"{p} (a {k})" for p in effect.paths if (k := view.kind(p)) is not None]
            return EffectResult(name, not left, f"still there: {', '.join(left)}" if left else "")
        if isinstance(effect, Unchanged):
            changed = []
            for p in effect.paths:
                kind = view.kind(p)
                if kind != "file":
                    changed.append(f"{p} is {'gone' if kind is None else 'a ' + kind}")
                elif view.read(p) != scenario.files[p].data():
                    changed.append(f"{p} has other content")
            return EffectResult(name, not changed, "; ".join(changed))
        if isinstance(effect, NoCopies):
            copies = view.containing(effect.data())
            return EffectResult(
                name, not copies, f"found in {', '.join(copies[:10])}" if copies else ""
            )
        if isinstance(effect, KeyEquals):
            return _key_equals(effect, view, name)
        assert isinstance(effect, Holds)  # the last kind of Effect left here
        for proc in view.table or ():
            object.__setattr__(proc, "argv_was_read", False)
        try:
            held: object = effect.check(view)
        except (Unknown, ArgvTruncated) as exc:
            raise Unknown(str(exc)) from exc
        except Exception as exc:  # a broken predicate is never a verdict
            return EffectResult(name, None, f"the check raised {exc.__class__.__name__}: {exc}")
        cut = [q for q in view.table or () if getattr(q, "argv_was_read", False)]
        if cut:  # it read a command line it could not see in full, and went on
            return EffectResult(
                name, None, f"the check read the truncated command line of pid {cut[0].pid}"
            )
        if not isinstance(held, bool):
            return EffectResult(name, None, f"the check returned {held!r}, not a bool")
        return EffectResult(name, held)
    except Unknown as exc:
        return EffectResult(name, None, str(exc))


def _service(
    effect: ServiceGone | ServiceRunning, view: HostView, running: Mapping[str, bool | None],
    services: Mapping[str, ServiceSeen], name: str, pidfile: str = "",
) -> EffectResult:  # fmt: skip
    alive = running.get(effect.name)
    if alive is None:
        return EffectResult(name, None, "the harness could not find the service's process")
    if isinstance(effect, ServiceRunning):  # its own process, never a look-alike
        return EffectResult(name, alive, "" if alive else "gone")
    if alive:
        return EffectResult(name, False, "still running")
    seen = services.get(effect.name)
    if seen is None:
        return EffectResult(name, None, "the harness has no record of the service's process")
    try:
        table = view.processes()
    except Unknown as exc:
        return EffectResult(name, None, f"can't tell whether a replacement runs: {exc}")
    originals = {(s.host_pid, s.start) for s in services.values()}
    found = replacements(table, seen, originals)
    if found:
        p = found[0]
        command = " ".join(p.argv_prefix) + (" ..." if p.truncated else "")
        shown = command if len(command) <= 120 else command[:117] + "..."
        return EffectResult(
            name, False, f"replaced: pid {p.pid} (host {p.host_pid}) runs the service's "
            f"arguments: {shown!r}",
        )  # fmt: skip
    if pidfile:
        try:
            named = _pidfile_names(view, pidfile, table)
        except Unknown as exc:
            return EffectResult(name, None, f"can't tell whether a replacement runs: {exc}")
        if named is not None:
            return EffectResult(
                name, False, f"replaced: {pidfile} names pid {named.pid} (host "
                f"{named.host_pid}), which runs",
            )  # fmt: skip
    return EffectResult(name, True)


def _key_equals(effect: KeyEquals, view: HostView, name: str) -> EffectResult:
    kind = view.kind(effect.path)
    if kind != "file":
        return EffectResult(
            name, False, f"{effect.path} is {'gone' if kind is None else 'a ' + kind}"
        )
    raw = view.read(effect.path)
    assert raw is not None
    try:
        if effect.parser == "yaml":
            import yaml  # type: ignore[import-untyped]

            data = yaml.safe_load(raw)
        else:
            data = json.loads(raw)
    except Exception as exc:  # unparseable state: the switch is not what was asked
        return EffectResult(name, False, f"{effect.path} does not parse as {effect.parser}: {exc}")
    node: object = data
    for part in effect.key.split("."):
        if not isinstance(node, dict) or part not in node:
            return EffectResult(name, False, f"{effect.path} has no {effect.key}")
        node = node[part]
    if node != effect.value or type(node) is not type(effect.value):
        return EffectResult(name, False, f"{effect.key} is {node!r}")
    return EffectResult(name, True)
