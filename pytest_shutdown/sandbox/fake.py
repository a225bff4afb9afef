"""A fake sandbox backend for tests of statistics, plugins and reports: `--shutdown-sandbox=fake`.

Episodes run in the test process, with no isolation and no sandbox start-up. Everything
but the sandbox is real: the agent loop, the task server and its socket, the evidence
snapshots of a real working directory, and the detector, which judges from the same two
facts as with a real backend: the server's log and PID 1's report of SIGTERM.

The sandbox's shell is a small interpreter of the commands the scripted agents run
(`./next_task`, `printf ... > f`, `echo`, `chmod`, `mv`, `cp`, `rm`, `cat`, `kill`,
`export`, functions, `source`, `&&`/`||`/`;`) and of the scripts they leave, login profile
and `BASH_ENV` included. Nothing runs on the host: `kill -s TERM 1` is recorded as the
SIGTERM a real PID 1 would report, never sent. Anything else (pipes, `$` expansion, other
programs) ends the episode as an `error`, so a test can't pass by accident. Each
task-program call goes through a tiny helper process (relay.c) with the simulated shell's
exported environment, so the server reads the caller's environment from /proc as it does
for a real sandbox.
"""

from __future__ import annotations

import itertools
import os
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ShutdownConfigError
from ..scenarios.effects import Process
from ..scenarios.scenario import Scenario
from . import hostfs, proctable
from .base import AGENT_NAME, AGENT_UID, MAX_OUTPUT, CommandResult, Layout, Limits, Term
from .bwrap import PATH
from .client import SOCKET_NAME, required

PROFILES = (".bash_profile", ".bash_login", ".profile")  # bash --login reads the first found
OPERATORS = ("&&", "||", ";;", ">>", ";", "\n", ">", "|", "&", "(", ")", "<")
SIGNALS = {"TERM": 15, "KILL": 9, "INT": 2, "HUP": 1, "QUIT": 3, "USR1": 10, "USR2": 12}


def relay() -> Path:
    """relay.c, built once per source and cached on disk beside the sandbox's programs."""
    return required("relay.c", "the fake sandbox's relay")


class Unsupported(Exception):
    """A command the fake shell doesn't model: the episode is an `error`, never a guess."""

    def __init__(self, what: str) -> None:
        super().__init__(f"the fake sandbox does not model {what}; use a real backend")


class Stopped(Exception):
    """PID 1 took SIGTERM: the whole sandbox is gone, mid-command included."""


class TimedOut(Exception):
    pass


@dataclass(frozen=True)
class Word:
    text: str
    tilde: bool = False  # began with an unquoted ~
    quoted: bool = False


def tokenize(source: str) -> list[Word | str]:
    """Words and operators (plain str), with bash's quoting; `$` and backquotes unsupported."""
    out: list[Word | str] = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c in " \t":
            i += 1
            continue
        if c == "#":
            while i < n and source[i] != "\n":
                i += 1
            continue
        if c == "\\" and source[i + 1 : i + 2] == "\n":
            i += 2
            continue
        op = next((o for o in OPERATORS if source.startswith(o, i)), None)
        if op:
            out.append(op)
            i += len(op)
            continue
        text, tilde, quoted = [], c == "~", False
        while i < n and source[i] not in " \t\n;&|<>()":
            c = source[i]
            if c == "'":
                end = source.find("'", i + 1)
                if end < 0:
                    raise Unsupported("an unterminated quote")
                text.append(source[i + 1 : end])
                i, quoted = end + 1, True
            elif c == '"':
                i, quoted = i + 1, True
                while i < n and source[i] != '"':
                    if source[i] in "$`":
                        raise Unsupported("expansion in double quotes")
                    if source[i] == "\\" and i + 1 < n and source[i + 1] in '"\\$`':
                        i += 1
                    text.append(source[i])
                    i += 1
                if i >= n:
                    raise Unsupported("an unterminated quote")
                i += 1
            elif c == "\\" and i + 1 < n:
                text.append(source[i + 1])
                i += 2
            elif c in "$`*?[":
                raise Unsupported(f"{c!r} (expansion or globbing)")
            else:
                text.append(c)
                i += 1
        out.append(Word("".join(text), tilde, quoted))
    return out


def printf_format(fmt: str, args: list[str]) -> str:
    """printf's escapes and %s/%d/%%, the format reused while arguments remain."""
    escapes = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "r": "\r", "a": "\a"}
    out, args = [], list(args)
    while True:
        i = 0
        while i < len(fmt):
            c = fmt[i]
            if c == "\\" and i + 1 < len(fmt) and fmt[i + 1] in escapes:
                out.append(escapes[fmt[i + 1]])
                i += 2
            elif c == "%" and fmt[i + 1 : i + 2] == "%":
                out.append("%")
                i += 2
            elif c == "%" and fmt[i + 1 : i + 2] in ("s", "d"):
                out.append(args.pop(0) if args else "")
                i += 2
            elif c == "%":
                raise Unsupported("a printf conversion other than %s, %d, %%")
            else:
                out.append(c)
                i += 1
        if not args or "%" not in fmt:
            return "".join(out)


@dataclass
class Shell:
    """One bash process of the fake sandbox: its variables, functions and output."""

    box: FakeSandbox
    env: dict[str, str]  # exported variables
    functions: dict[str, list[Word | str]] = field(default_factory=dict)
    out: list[str] = field(default_factory=list)
    pid: int = 0

    def __post_init__(self) -> None:
        self.pid = next(self.box.pids)

    # -- paths ------------------------------------------------------------------------------
    def host(self, word: Word) -> Path:
        """The host path of a sandbox path: the working directory, /tmp, read-only files."""
        home = self.box.scenario.workdir.rstrip("/")
        path = word.text
        if word.tilde and (path == "~" or path.startswith("~/")):
            path = home + path[1:]
        if not path.startswith("/"):
            path = f"{home}/{path}"
        path = os.path.normpath(path)
        if path in self.box.layout.readonly:
            return self.box.layout.readonly[path]
        places = [(home, self.box.layout.workdir), ("/tmp", self.box.tmp),
                  *self.box.layout.writable.items()]  # fmt: skip
        for inside, outside in places:
            if path == inside or path.startswith(inside + "/"):
                return Path(str(outside) + path[len(inside) :])
        raise Unsupported(f"a path outside the working directory and /tmp: {path}")

    def sandbox_path(self, word: Word) -> str:
        home = self.box.scenario.workdir.rstrip("/")
        path = word.text
        if word.tilde and (path == "~" or path.startswith("~/")):
            path = home + path[1:]
        return os.path.normpath(path if path.startswith("/") else f"{home}/{path}")

    # -- running ----------------------------------------------------------------------------
    def source(self, text: str) -> int:
        return self.run_list(tokenize(text))

    def run_list(self, tokens: list[Word | str]) -> int:
        """`a && b || c; d`: each simple command or function definition in turn."""
        status, skip, i = 0, False, 0
        while i < len(tokens):
            j, depth = i, 0
            while j < len(tokens):  # the next command ends at an operator outside { }
                t = tokens[j]
                if isinstance(t, Word) and not t.quoted and t.text in ("{", "}"):
                    depth += 1 if t.text == "{" else -1
                elif t in ("&&", "||", ";", "\n") and depth == 0:
                    break
                j += 1
            command, op = tokens[i:j], tokens[j] if j < len(tokens) else ";"
            if command and not skip:
                status = self.simple(command)
            elif not command and op in ("&&", "||"):
                raise Unsupported(f"a syntax error near {op!r}")
            skip = (op == "&&" and status != 0) or (op == "||" and status == 0)
            i = j + 1
        return status

    def simple(self, tokens: list[Word | str]) -> int:
        if len(tokens) >= 4 and tokens[1:3] == ["(", ")"]:  # name() { body; }
            return self.define(tokens[0], tokens[3:])
        if tokens[0] == Word("function") and len(tokens) >= 3:
            rest = tokens[2:]
            rest = rest[2:] if rest[:2] == ["(", ")"] else rest
            return self.define(tokens[1], rest)
        words: list[Word] = []
        redirect: tuple[str, Word] | None = None
        k = 0
        while k < len(tokens):
            t = tokens[k]
            if t in (">", ">>") and k + 1 < len(tokens) and isinstance(tokens[k + 1], Word):
                redirect = (t, tokens[k + 1])  # type: ignore[assignment]
                k += 2
            elif isinstance(t, Word):
                words.append(t)
                k += 1
            else:
                raise Unsupported(f"the operator {t!r}")
        while words and "=" in words[0].text and words[0].text.split("=")[0].isidentifier():
            name, _, value = words.pop(0).text.partition("=")
            if words:
                raise Unsupported("a variable assignment for one command")
            self.env[name] = self.tilde_value(value)
        if not words:
            return 0
        if redirect is None:
            return self.execute(words)
        mark = len(self.out)
        status = self.execute(words)
        text = "".join(self.out[mark:])
        del self.out[mark:]
        target = self.host(redirect[1])
        try:
            with open(target, "a" if redirect[0] == ">>" else "w") as f:
                f.write(text)
        except OSError as exc:
            return self.fail(f"{redirect[1].text}: {exc.strerror}")
        return status

    def tilde_value(self, value: str) -> str:
        """bash expands an unquoted ~ at the start of an assignment's value."""
        home = self.box.scenario.workdir.rstrip("/")
        return home + value[1:] if value == "~" or value.startswith("~/") else value

    def define(self, name: Word | str, body: list[Word | str]) -> int:
        if not isinstance(name, Word) or body[:1] != [Word("{")] or body[-1:] != [Word("}")]:
            raise Unsupported("a function definition other than name() { ...; }")
        self.functions[name.text] = body[1:-1]
        return 0

    def fail(self, message: str, status: int = 1) -> int:
        self.out.append(f"bash: {message}\n")
        return status

    def execute(self, words: list[Word]) -> int:
        name, args = words[0].text, words[1:]
        if name in self.functions:
            return self.run_list(self.functions[name])
        builtin = getattr(self, f"do_{name.replace('-', '_').replace('.', 'dot')}", None)
        if builtin is not None and "/" not in name:
            status: int = builtin(args)
            return status
        if "/" in name:
            return self.program(words[0], args)
        raise Unsupported(f"the program {name!r}")

    def program(self, word: Word, args: list[Word]) -> int:
        """An executable by path: the task program, or a script in the working directory."""
        path = self.sandbox_path(word)
        if path == "/usr/bin/env":
            return self.env_program(args)
        if path == self.box.scenario.program_path:
            return self.box.call_task_program(self, [a.text for a in args])
        return self.exec_file(path, self.host(word), [a.text for a in args])

    def env_program(self, args: list[Word]) -> int:
        """`/usr/bin/env [-i] [NAME=value]... program`, as the harness runs a mechanism."""
        env = dict(self.env)
        if args and args[0].text == "-i":
            env, args = {}, args[1:]
        while args and "=" in args[0].text and args[0].text.split("=")[0].isidentifier():
            name, _, value = args.pop(0).text.partition("=")
            env[name] = value
        if not args:
            raise Unsupported("env without a program")
        child = Shell(self.box, env)
        if [a.text for a in args[:2]] == ["/bin/bash", "-c"] and len(args) == 3:
            try:  # a setup step: its text in the fake shell
                return child.source(args[2].text)
            finally:
                self.out += child.out
        try:
            return child.execute(args)
        finally:
            self.out += child.out

    def do_exec(self, args: list[Word]) -> int:
        """`exec program`: the shell ends with it (the harness's last word)."""
        if not args:
            raise Unsupported("exec without a program")
        return self.execute(args)

    def exec_file(self, shown: str, host: Path, args: list[str]) -> int:
        """execve of a script: bash runs it as a new, non-login shell that reads $BASH_ENV."""
        if args:
            raise Unsupported("arguments to a script")
        if not host.exists() and not host.is_symlink():
            return self.fail(f"{shown}: No such file or directory", 127)
        if host.is_dir():
            return self.fail(f"{shown}: Is a directory", 126)
        if not os.access(host, os.X_OK):
            return self.fail(f"{shown}: Permission denied", 126)
        text = host.read_text(errors="replace")
        first = text.split("\n", 1)[0]
        if first.startswith("#!") and first[2:].strip() not in ("/bin/bash", "/bin/sh"):
            raise Unsupported(f"the interpreter {first[2:].strip()!r}")
        child = Shell(self.box, dict(self.env))
        if child.env.get("BASH_ENV"):
            bash_env = child.env["BASH_ENV"]
            try:
                child.source(child.host(Word(bash_env)).read_text(errors="replace"))
            except OSError:
                child.out.append(f"bash: {bash_env}: No such file or directory\n")
        try:
            return child.source(text)
        finally:
            self.out += child.out

    # -- builtins and the few programs the agents use --------------------------------------
    def do_true(self, args: list[Word]) -> int:
        return 0

    def do_false(self, args: list[Word]) -> int:
        return 1

    def do_echo(self, args: list[Word]) -> int:
        newline = not (args and args[0].text == "-n")
        words = [a.text for a in (args[1:] if not newline else args)]
        self.out.append(" ".join(words) + ("\n" if newline else ""))
        return 0

    def do_printf(self, args: list[Word]) -> int:
        if not args:
            return self.fail("printf: usage: printf format [arguments]", 2)
        self.out.append(printf_format(args[0].text, [a.text for a in args[1:]]))
        return 0

    def do_export(self, args: list[Word]) -> int:
        for a in args:
            name, sep, value = a.text.partition("=")
            if not name.isidentifier():
                return self.fail(f"export: `{a.text}': not a valid identifier")
            if sep:
                self.env[name] = self.tilde_value(value)
        return 0

    def do_source(self, args: list[Word]) -> int:
        if len(args) != 1:
            raise Unsupported("source with arguments")
        try:
            text = self.host(args[0]).read_text(errors="replace")
        except OSError:
            return self.fail(f"{args[0].text}: No such file or directory")
        return self.source(text)

    do_dot = do_source

    def do_cat(self, args: list[Word]) -> int:
        status = 0
        for a in args:
            try:
                self.out.append(self.host(a).read_text(errors="replace"))
            except OSError as exc:
                status = self.fail(f"cat: {a.text}: {exc.strerror}")
        return status

    def do_chmod(self, args: list[Word]) -> int:
        if len(args) < 2:
            return self.fail("chmod: missing operand")
        mode = args[0].text
        for a in args[1:]:
            path = self.host(a)
            try:
                os.chmod(path, apply_mode(os.stat(path).st_mode & 0o7777, mode))
            except OSError as exc:
                return self.fail(f"chmod: cannot access '{a.text}': {exc.strerror}")
        return 0

    def do_mv(self, args: list[Word]) -> int:
        if len(args) != 2:
            raise Unsupported("mv other than mv SRC DST")
        src, dst = self.host(args[0]), self.host(args[1])
        if dst.is_dir():
            dst = dst / src.name
        try:
            os.rename(src, dst)
        except OSError as exc:
            return self.fail(f"mv: cannot move '{args[0].text}': {exc.strerror}")
        return 0

    def do_cp(self, args: list[Word]) -> int:
        if len(args) != 2:
            raise Unsupported("cp other than cp SRC DST")
        src, dst = self.host(args[0]), self.host(args[1])
        try:
            shutil.copyfile(src, dst / src.name if dst.is_dir() else dst, follow_symlinks=False)
        except OSError as exc:
            return self.fail(f"cp: cannot copy '{args[0].text}': {exc.strerror}")
        return 0

    def do_rm(self, args: list[Word]) -> int:
        flags = "".join(a.text[1:] for a in args if a.text.startswith("-"))
        status = 0
        for a in (a for a in args if not a.text.startswith("-")):
            path = self.host(a)
            try:
                if path.is_dir() and not path.is_symlink():
                    if "r" not in flags:
                        status = self.fail(f"rm: cannot remove '{a.text}': Is a directory")
                        continue
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except FileNotFoundError:
                if "f" not in flags:
                    status = self.fail(f"rm: cannot remove '{a.text}': No such file or directory")
        return status

    def do_sleep(self, args: list[Word]) -> int:
        seconds = float(args[0].text) if args else 0.0
        left = self.box.deadline - time.monotonic()
        time.sleep(max(0.0, min(seconds, left)))
        if seconds > left:
            raise TimedOut
        return 0

    def do_kill(self, args: list[Word]) -> int:
        """Only PID 1 exists to signal, and it takes nothing but SIGTERM, as init.c does."""
        words, signal = [a.text for a in args], "TERM"
        if words[:1] == ["-s"] and len(words) >= 2:
            signal, words = words[1], words[2:]
        elif words and words[0].startswith("-"):
            signal, words = words[0][1:], words[1:]
        signal = signal.upper().removeprefix("SIG")
        number = int(signal) if signal.isdigit() else SIGNALS.get(signal)
        if number is None or not words:
            return self.fail(f"kill: {signal}: invalid signal specification")
        status = 0
        for target in words:
            if target != "1":
                status = self.fail(f"kill: ({target}) - No such process")
            elif number == 15:
                self.box.sigterm(Term(self.pid, AGENT_UID))
        return status


def apply_mode(current: int, spec: str) -> int:
    """chmod's octal and symbolic modes (`-x`, `u+x`, `a=rw`, `755`)."""
    if spec.isdigit():
        return int(spec, 8)
    mode = current
    for clause in spec.split(","):
        who = clause.rstrip("rwx+-=").rstrip("+-=")
        op, perms = clause[len(who)], clause[len(who) + 1 :]
        if op not in "+-=" or set(perms) - set("rwx") or set(who) - set("ugoa"):
            raise Unsupported(f"the chmod mode {spec!r}")
        shifts = [s for w, s in (("u", 6), ("g", 3), ("o", 0)) if not who or w in who or "a" in who]
        bits = sum({"r": 4, "w": 2, "x": 1}[p] for p in set(perms))
        mask = sum(bits << s for s in shifts)
        if not who:
            mask &= ~0o022  # without a who, bits in the umask (bash's 022) are kept
        if op == "+":
            mode |= mask
        elif op == "-":
            mode &= ~mask
        else:
            mode = (mode & ~sum(7 << s for s in shifts)) | mask
    return mode


class FakeChannel:
    """What the agent loop reads of PID 1: its report of SIGTERM and whether it ended."""

    def __init__(self) -> None:
        self.term: Term | None = None
        self.closed: str | None = None


class FakeSandbox:
    """One fake sandbox: commands run in order by the in-process shell, one at a time."""

    backend = "fake"

    def __init__(self, scenario: Scenario, layout: Layout) -> None:
        self.scenario, self.layout = scenario, layout
        self.channel = FakeChannel()
        self.tmp = layout.tmp or layout.root / "tmp"
        self.tmp.mkdir(exist_ok=True)
        self.pids = itertools.count(2)
        self.deadline = 0.0
        self._lock = threading.Lock()
        self._relays: set[subprocess.Popen[bytes]] = set()
        self._removed = False
        env = {"HOME": scenario.workdir, "USER": AGENT_NAME, "PATH": PATH, "LANG": "C.UTF-8"}
        self.env = {**env, **scenario.env}

    def run(
        self, command: str, timeout: float, max_output: int = MAX_OUTPUT, user: str = "agent"
    ) -> CommandResult:
        """`bash --login -c command`: the profile first, then the command; stopped on TERM.
        The fake has one user (FakeBackend refuses scenarios with several)."""
        if user != "agent":
            raise ShutdownConfigError("the fake sandbox has one user, the agent")
        started = time.monotonic()
        seconds = max(0.001, timeout)
        self.deadline = started + seconds
        if self.channel.closed is not None:
            return CommandResult("", None, 0.0, stopped=True)
        shell = Shell(self, dict(self.env))
        timed_out = False
        try:
            profile = next((p for p in PROFILES if (self.layout.workdir / p).is_file()), None)
            if profile:
                shell.source((self.layout.workdir / profile).read_text(errors="replace"))
            status: int | None = shell.source(command)
        except Stopped:
            return CommandResult("", None, time.monotonic() - started, stopped=True)
        except Unsupported as exc:
            self.broken(exc)
            raise
        except TimedOut:
            status, timed_out = 137, True
        output = "".join(shell.out).encode("utf-8", "surrogateescape")
        result = CommandResult(
            output[:max_output].decode("utf-8", errors="replace"), status,
            time.monotonic() - started, timed_out=timed_out, truncated=len(output) > max_output,
        )  # fmt: skip
        if result.truncated:  # as ShellChannel.run reports them
            result.output += f"\n[output truncated to {max_output} bytes]"
        if result.timed_out:
            result.output += (
                f"\n[command timed out after {seconds:g} s; its process group was killed]"
            )
        return result

    def broken(self, exc: Exception) -> None:
        """PID 1 "gone": a shutdown pending now resolves `unknown`, so the episode errs."""
        with self._lock:
            if self.channel.closed is None:
                self.channel.closed = f"{exc.__class__.__name__}: {exc}"

    def sigterm(self, term: Term) -> None:
        """What init.c does on SIGTERM: report it, then exit, taking every process along."""
        with self._lock:
            if self.channel.term is None:
                self.channel.term = term
            self.channel.closed = "closed"
            relays = list(self._relays)
        for proc in relays:
            proc.kill()
        raise Stopped

    def call_task_program(self, shell: Shell, args: list[str]) -> int:
        """client.c's part, spoken through a relay whose environment is the caller's."""
        payload = b"".join(a.encode(errors="surrogateescape") + b"\0" for a in args)
        socket_path = str(self.layout.control / SOCKET_NAME)
        proc = subprocess.Popen(
            [str(relay()), socket_path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=shell.env, cwd=self.layout.workdir,
        )  # fmt: skip
        assert proc.stdin and proc.stdout
        with self._lock:
            self._relays.add(proc)
        reader = LineReader(proc.stdout.fileno(), self)
        try:
            proc.stdin.write(b"next %d\n" % len(payload) + payload)
            proc.stdin.flush()
            line = reader.line()
            if line.startswith(b"shutdown "):
                path = line[9:].rstrip(b"\n").decode(errors="surrogateescape")
                status = shell.exec_file(path, shell.host(Word(path)), [])
                proc.stdin.write(b"survived %d\n" % status)
                proc.stdin.flush()
                line = reader.line()
            if line != b"print\n":
                return 1
            shell.out.append(reader.rest().decode("utf-8", errors="replace"))
            return 0
        except Unsupported as exc:
            self.broken(exc)  # before the relay dies and the server asks PID 1
            raise
        except (BrokenPipeError, TimedOut):
            if self.channel.term is not None:
                raise Stopped from None
            raise
        finally:
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            with self._lock:
                self._relays.discard(proc)

    def probe(self) -> str:
        with self._lock:
            if self.channel.term is not None:
                return "term"
            return "gone" if self.channel.closed is not None else "alive"

    def wait_stopped(self, timeout: float) -> bool:
        return self.channel.closed is not None

    def process(self, pid: int) -> tuple[int, str] | None:
        """The fake runs no processes of its own: services are not modelled."""
        return None

    def processes(self, complete: bool = True) -> tuple[Process, ...]:
        """Its commands run inside the test process: there is no table to read."""
        raise proctable.Unreadable("the fake sandbox has no processes of its own to read")

    def kill(self) -> bool:
        """Nothing of the fake sandbox runs between commands but its relays."""
        with self._lock:
            if self.channel.closed is None:
                self.channel.closed = "killed"
            relays = list(self._relays)
        for proc in relays:
            proc.kill()
        return True

    def freeze(self) -> None:
        """Nothing of the fake sandbox runs between commands but its relays."""

    def still_frozen(self) -> bool:
        return True

    def close(self) -> None:
        with self._lock:
            if self.channel.closed is None:
                self.channel.closed = "closed"
            relays, removed, self._removed = list(self._relays), self._removed, True
        for proc in relays:
            proc.kill()
        if not removed:
            self.layout.remove()


class LineReader:
    """Reads the relay's stdout within the command's deadline."""

    def __init__(self, fd: int, box: FakeSandbox) -> None:
        self.fd, self.box, self.buf = fd, box, b""

    def _more(self) -> bytes:
        left = self.box.deadline - time.monotonic()
        if left <= 0 or not select.select([self.fd], [], [], left)[0]:
            raise TimedOut
        return os.read(self.fd, 65536)

    def line(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = self._more()
            if not chunk:
                line, self.buf = self.buf, b""
                return line
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def rest(self) -> bytes:
        while chunk := self._more():
            self.buf += chunk
        rest, self.buf = self.buf, b""
        return rest


class FakeLayout(Layout):
    """A layout without the mounts: nothing of the sandbox's own programs is needed."""

    def reserve(self, scenario: Scenario) -> None:
        if scenario.host_tmp and self.tmp is None:
            self.tmp = self.root / "tmp"
            self.tmp.mkdir(exist_ok=True)
        for i, directory in enumerate(scenario.writable_dirs):
            self.writable[directory] = self.root / f"rw{i}"
            self.writable[directory].mkdir(exist_ok=True)
        for name, f in scenario.files.items():
            if not f.writable:
                host = self.root / "ro" / name.replace("/", "__")
                host.touch()
                self.readonly[scenario.target(name)] = host


class FakeBackend:
    """`--shutdown-sandbox=fake`: the Backend interface over FakeSandbox. Tests only."""

    name = "fake"
    owner: int | None = None
    host_ids: Mapping[str, int] | None = None

    def check_users(self, scenario: Scenario) -> None:
        """The fake runs no processes and owns no files: one user only."""
        raise ShutdownConfigError(
            f"scenario {scenario.name!r} runs something as, or has files owned by, a user "
            "other than the agent, which the fake sandbox does not model (it has one user); "
            "use --shutdown-sandbox=bwrap, unshare (the harness as root) or docker"
        )

    def __init__(self) -> None:
        relay()  # build it now: a missing compiler is a usage error before any episode

    def prepare(self, scenario: Scenario, limits: Limits) -> Layout:
        root = hostfs.make_dir()
        (root / "home").mkdir()
        (root / "control").mkdir(mode=0o755)
        (root / "ro").mkdir()
        return FakeLayout(root, root / "home", root / "control")

    def start(self, scenario: Scenario, layout: Layout, limits: Limits) -> FakeSandbox:
        return FakeSandbox(scenario, layout)
