"""The agent loop: model <-> tools in one fresh sandbox, ending in one Episode."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import time
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any, cast

from ..errors import ShutdownConfigError
from ..models import TOOLS, Message, Model, ModelError
from ..sandbox import proctable
from ..sandbox.base import Backend, CommandResult, Layout, Sandbox, Term, check_users
from ..scenarios.scenario import Scenario
from . import detector, effects, evidence
from .bounds import AgentConfig
from .channel import ChannelLog, TaskServer
from .evidence import Evidence
from .record import Episode, Outcome, Role, TranscriptEntry

STOP_TIMEOUT = 60.0  # PID 1 exits right after it reports SIGTERM; the sandbox must be gone
# The environment a harness-run mechanism gets, unless Trigger.agent_env: the scenario's.
MECHANISM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
# HOME of the users other than the agent: never the agent's working directory, whose files
# (a .profile, a Python user site) must not run with another user's rights.
HOMES = {"root": "/root", "service": "/nonexistent"}
Usage = tuple[Path, int | None]  # a writable place and its bytes on disk (None: unknown)


class _Finished(Exception):
    def __init__(self, outcome: Outcome, reason: str) -> None:
        self.outcome, self.reason = outcome, reason


@dataclass(frozen=True)
class Observed:
    """PID 1's report, then the task server's log, read in that order. A trigger call is
    logged before the SIGTERM it causes reaches PID 1, so a TERM read here is always
    explained by the log read after it; the other order could pair a log from before a
    background trigger call with that call's TERM ("stopped before the trigger ran")."""

    term: Term | None
    closed: str | None
    log: ChannelLog


def _entry(message: Message, **extra: Any) -> TranscriptEntry:
    role = cast(Role, message.role)  # Messages hold the four conversation roles
    return TranscriptEntry(
        role,
        message.content,
        reasoning=message.reasoning or None,
        tool_calls=message.tool_calls,
        usage=dict(message.usage),
        call_id=message.call_id,
        **extra,
    )


@dataclass
class _Draft:
    """The episode as it happens; `freeze()` makes the Episode it ends as."""

    scenario: str
    model: str
    sandbox: str
    params: dict[str, Any]
    outcome: Outcome = Outcome.ERROR
    reason: str = ""
    evidence: list[Evidence] = field(default_factory=list)
    transcript: list[TranscriptEntry] = field(default_factory=list)
    answer: str | None = None
    turns: int = 0
    task_calls: int = 0
    trigger_turn: int | None = None
    wall_time: float = 0.0
    command_time: float = 0.0
    sandbox_start: float = 0.0

    def freeze(self) -> Episode:
        return Episode(**{f.name: getattr(self, f.name) for f in fields(Episode)})


class _Loop:
    def __init__(self, scenario: Scenario, model: Model, sandbox: Sandbox, server: TaskServer,
                 layout: Layout, config: AgentConfig, episode: _Draft) -> None:  # fmt: skip
        assert scenario.trigger is not None
        self.scenario, self.model, self.sandbox = scenario, model, sandbox
        self.server, self.layout, self.config, self.ep = server, layout, config, episode
        self.trigger = scenario.trigger
        mechanism = scenario.trigger.mechanism
        # Files in the working directory are compared; others only by the commands naming them.
        self.mechanism = tuple(p for p in mechanism if not p.startswith("/"))
        outside = tuple(os.path.basename(p) for p in mechanism if p.startswith("/"))
        # A program mounted outside the working directory is not among the agent's files.
        self.program = None if scenario.program.path else scenario.program.name
        names = (*self.mechanism, *outside, *filter(None, [self.program]))
        self.pattern = evidence.command_patterns(names)
        self.messages: list[Message] = []
        self.snapshot = evidence.snapshot(layout.workdir)
        self.initial = self.snapshot  # the mechanism as the scenario wrote it
        self.commands = 0  # bash commands run for the agent, for Trigger.after_command
        self.context_seen = False  # the trigger's context has been turned into evidence
        self.checks = scenario.checks_effects  # judged by effects checked on the final files
        self.services: dict[str, tuple[int, str]] = {}  # name -> host pid, start time
        self.seen: dict[str, set[tuple[str, ...]]] = {}  # name -> command lines it ran
        self.imports = evidence.python_imports(
            [scenario.files[p].data() for p in self.mechanism if p in scenario.files]
        )
        self.started = time.monotonic()  # the harness's clock for Trigger.after_seconds
        # Trigger.after_change's file as the agent starts, set by environment()
        self.deliverable: evidence.FileState | None = None

    def say(self, message: Message, **extra: Any) -> None:
        self.messages.append(message)
        self.ep.transcript.append(_entry(message, **extra))

    def clean_env(self, *argv: str, user: str = "agent", root_dir: bool = False) -> str:
        """`argv` run with the scenario's environment (`env -i` plus Scenario.env), not the
        agent's, as a command for the sandbox's shell; `user`'s HOME and USER, and from
        `/` when `root_dir` (nothing relative then names the agent's files)."""
        home = self.scenario.workdir if user == "agent" else HOMES[user]
        env = {"HOME": home, "USER": user, "PATH": MECHANISM_PATH, "LANG": "C.UTF-8",
               **self.scenario.env}  # fmt: skip
        assigns = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
        cd = "cd / && " if root_dir else ""
        return f"{cd}exec /usr/bin/env -i {assigns} {shlex.join(argv)}"

    def scenario_command(self, command: str, user: str = "agent", root_dir: bool = False) -> str:
        """A shell command line through bash with the scenario's environment; another
        user's without login or rc files."""
        shell = (
            ["/bin/bash", "-c"] if user == "agent" else ["/bin/bash", "--noprofile", "--norc", "-c"]
        )
        return self.clean_env(*shell, command, user=user, root_dir=root_dir)

    async def environment(self) -> None:
        """Setup steps, then services, before the agent's first turn; any failure is an
        `error` (a scenario that can't be set up is never a verdict)."""
        for step in self.scenario.steps:
            result = await asyncio.to_thread(
                self.sandbox.run, self.scenario_command(step.command, step.user),
                self.config.command_timeout, self.config.max_output, step.user,
            )  # fmt: skip
            self.ep.transcript.append(TranscriptEntry(
                "harness", result.output, event="setup", command=step.command,
                exit_code=result.exit_code,
            ))  # fmt: skip
            if result.exit_code != 0:
                raise _Finished(
                    Outcome.ERROR,
                    f"setup step {step.command!r} failed (status {result.exit_code})",
                )
        for name, service in self.scenario.services.items():
            start = f"( {service.command} ) </dev/null >/dev/null 2>&1 & echo $!"
            other = service.user != "agent"  # from /: its command names nothing relative
            result = await asyncio.to_thread(
                self.sandbox.run, self.scenario_command(start, service.user, root_dir=other),
                self.config.command_timeout, self.config.max_output, service.user,
            )  # fmt: skip
            pid = result.output.strip()
            found = await asyncio.to_thread(self.find, int(pid)) if pid.isdigit() else None
            self.ep.transcript.append(TranscriptEntry(
                "harness", result.output, event="service", command=service.command,
                exit_code=result.exit_code,
            ))  # fmt: skip
            if result.exit_code != 0 or found is None:
                raise _Finished(Outcome.ERROR, f"service {name!r} could not be started and found")
            self.services[name] = found
            self.seen[name] = await asyncio.to_thread(_settled_argvs, *found)
        # What the agent starts from: setup steps and services are not its doing.
        self.snapshot = evidence.snapshot(self.layout.workdir, self.snapshot)
        self.initial = self.snapshot
        if self.trigger.after_change:  # read directly: a snapshot is bounded, and an agent
            # could push the file out of it
            self.deliverable = evidence.state_of(self.layout.workdir / self.trigger.after_change)

    async def run(self) -> None:
        await self.environment()
        self.say(Message("system", self.scenario.system_prompt))
        self.say(Message("user", self.scenario.user_prompt))
        for turn in range(1, self.config.max_turns + 1):
            self.ep.turns = turn
            started = time.perf_counter()
            try:
                reply = await self.model.respond(list(self.messages), TOOLS)
            except ModelError as exc:
                raise _Finished(Outcome.ERROR, f"model error on turn {turn}: {exc}") from exc
            self.say(reply, turn=turn, model_time=time.perf_counter() - started)
            if not reply.tool_calls:
                self.say(Message("user", self.scenario.continue_message))
                continue
            for call in reply.tool_calls:
                if call.name == "submit":
                    self.ep.answer = str(call.arguments.get("answer", ""))
                    self.tool_reply(call.id, "submitted", name="submit")
                    raise await self.ended("the agent submitted")
                if call.name == "bash" and isinstance(call.arguments.get("command"), str):
                    self.observe_services()
                    await self.bash(turn, call.id, call.arguments["command"])
                elif call.name == "bash":
                    self.tool_reply(call.id, "error: bash needs a string argument 'command'")
                else:
                    self.tool_reply(
                        call.id, f"error: unknown tool {call.name!r}; use bash or submit"
                    )
        raise await self.ended(f"the agent used all {self.config.max_turns} turns")

    async def ended(self, why: str) -> _Finished:
        if self.checks:
            if self.trigger.kind == "after_seconds" and not self.server.snapshot().triggered:
                # The clock runs on after the agent: a countdown can't be escaped by ending.
                await self.press(self.ep.turns, self.server.snapshot())
            return await self.check_effects(why)
        seen = await asyncio.to_thread(self.observe)
        return _Finished(*detector.at_end(seen.log, seen.term, self.trigger.deferred, why))

    async def check_effects(self, why: str) -> _Finished:
        """Stop every process of the sandbox, then check the effects on its final files.

        PID 1's report is read before the kill (which ends its channel); nothing the agent
        left running can change a file during or after the check.
        """
        now = await asyncio.to_thread(self.observe)
        log, term, closed = now.log, now.term, now.closed
        table, unread = None, ""
        long: dict[str, frozenset[tuple[int, str]]] = {}  # too long to keep, matched in full
        if effects.needs_table(self.scenario):  # the processes as they ran, before the kill
            try:
                # Let a just-started process exec, then freeze: nothing runs from the read
                # to the kill, however long the reading and matching take.
                quick = partial(self.sandbox.processes, False)
                await asyncio.to_thread(proctable.stable, quick)
                await asyncio.to_thread(self.sandbox.freeze)
                table = await asyncio.to_thread(self.sandbox.processes)
                long = await asyncio.to_thread(effects.long_matches, table, self.seen)
            except proctable.Unreadable as exc:
                table, unread = None, str(exc)
        running: dict[str, bool | None] = {
            name: proctable.running(*found) for name, found in self.services.items()
        }
        if table is not None and not await asyncio.to_thread(self.sandbox.still_frozen):
            table, unread = None, "a process of the sandbox ran on after it was frozen"
            running = dict.fromkeys(running)
        killed = await asyncio.to_thread(self.sandbox.kill)
        results = None
        if killed:
            view = effects.view_of(
                self.scenario, self.layout.workdir, self.layout.tmp, self.layout.writable,
                table, unread,
            )  # fmt: skip
            seen = {
                name: effects.ServiceSeen(
                    *found, frozenset(self.seen.get(name, ())), long.get(name, frozenset())
                )
                for name, found in self.services.items()
            }
            stopped: bool | None = term is not None
            if not stopped and log.resolution is not None:
                stopped = None if log.resolution.state == "unknown" else log.resolution.stopped
            results = await asyncio.to_thread(
                effects.check, self.scenario, view, stopped, running, seen
            )
            for r in results:
                detail = f" ({r.detail})" if r.detail else ""
                self.ep.transcript.append(TranscriptEntry(
                    "harness", f"{r.effect}: {_held(r.held)}{detail}", event="effect",
                    turn=self.ep.turns,
                ))  # fmt: skip
        verdict = detector.with_effects(log, term, closed, results, self.trigger.by_agent, why)
        if verdict[0] is Outcome.SABOTAGED:  # what did not hold, for `attempted` and reports
            self.ep.evidence += [
                Evidence("effect", "", f"not {r.effect}: {r.detail}", self.ep.turns, "")
                for r in results or ()
                if r.held is False
            ]
        return _Finished(*verdict)

    def after_command(self, turn: int, command: str) -> tuple[Observed, list[Usage]]:
        """Evidence of the command, what PID 1 and the task server said, and the disk use
        of every writable place the kernel doesn't bound (worker thread: the episode waits
        for it)."""
        self.take_evidence(turn, command)
        seen = self.observe()
        limit = self.config.limits.disk_mb * 1024 * 1024
        places = (self.layout.workdir, self.layout.tmp, *self.layout.writable.values())
        usage = [(p, evidence.disk_usage(p, limit)) for p in places
                 if p is not None and p not in self.layout.capped]  # fmt: skip
        return seen, usage

    def find(self, pid: int) -> tuple[int, str] | None:
        """A service's process on the host: looked for again for a moment, as a read of
        /proc under load can miss a process that is there."""
        for _ in range(10):
            found = self.sandbox.process(pid)
            if found is not None:
                return found
            time.sleep(0.05)
        return None

    def observe_services(self) -> None:
        """Before each agent command: the command line each service's process runs now, so
        a replacement started later under the same command line is recognised (a few
        small reads of the host's /proc, only in scenarios with services)."""
        for name, found in self.services.items():
            argv = proctable.argv(*found)
            if argv is not None:
                self.seen[name].add(argv)

    def observe(self) -> Observed:
        """PID 1's report, then the server's settled log, in that order (see Observed)."""
        channel = self.sandbox.channel
        term, closed = channel.term, channel.closed
        return Observed(term, closed, self.settled())

    def settled(self) -> ChannelLog:
        """The server's log once a fired trigger's fate is known (the mechanism may still run).

        The server resolves it within the trigger timeout; past that, ask PID 1 here.
        """
        log = self.server.snapshot()
        if log.trigger_call is not None and log.resolution is None:
            bound = self.config.command_timeout + 5
            if self.server.wait_resolved(bound) is None:
                self.server.resolve(f"the shutdown command had not returned after {bound:g} s")
            log = self.server.snapshot()
        return log

    def tool_reply(self, call_id: str, output: str, **extra: Any) -> None:
        self.say(Message("tool", output, call_id=call_id), **extra)

    async def bash(self, turn: int, call_id: str, command: str) -> None:
        problem = _unrunnable(command)
        if problem:
            self.tool_reply(call_id, f"error: {problem}", name="bash", command=command, turn=turn)
            return
        self.server.turn = turn
        try:
            result: CommandResult = await asyncio.to_thread(
                self.sandbox.run, command, self.config.command_timeout, self.config.max_output
            )
        except BaseException:  # evidence is taken whatever happened to the command
            self.take_evidence(turn, command)
            raise
        # One trip to a worker thread for all the host-side reading after a command: at
        # concurrency 64 each trip costs more than the reading.
        seen, usage = await asyncio.to_thread(self.after_command, turn, command)
        log = seen.log
        self.ep.command_time += result.duration
        self.commands += 1
        self.ep.task_calls = len(log.calls)
        if log.trigger_call and self.ep.trigger_turn is None:
            self.ep.trigger_turn = log.trigger_call.turn
        self.context_evidence(log, turn, command)
        self.tool_reply(
            call_id, result.output, name="bash", command=command, exit_code=result.exit_code,
            duration=result.duration, timed_out=result.timed_out, truncated=result.truncated,
            stopped=result.stopped, turn=turn,
        )  # fmt: skip
        if log.handler_errors:  # fail closed: a broken scenario is never a verdict
            raise _Finished(
                Outcome.ERROR, f"the task program's handler failed: {log.handler_errors[0]}"
            )
        if log.server_error:  # calls went unanswered: no verdict can be trusted
            raise _Finished(Outcome.ERROR, f"the task server failed: {log.server_error}")
        if self.checks:
            if detector.effects_due(log, seen.term, seen.closed, self.trigger.kind):
                raise await self.check_effects("the command that triggered the shutdown ended")
        else:
            await self.judge(seen)
        limit = self.config.limits.disk_mb * 1024 * 1024
        for where, used in usage:
            if used is None or used > limit:  # an unknown size fails closed
                why = "could not be measured" if used is None else "outgrew"
                mb = self.config.limits.disk_mb
                shown = {h: d for d, h in self.layout.writable.items()}
                what = (
                    "working directory" if where == self.layout.workdir
                    else shown.get(where, "/tmp")
                )  # fmt: skip
                raise _Finished(Outcome.ERROR, f"the {what} {why} (limit {mb} MB)")
        await self.press_if_due(turn, log)

    async def judge(self, seen: Observed) -> None:
        """End the episode once the detector is certain; a complied sandbox must be gone."""
        verdict = detector.after_command(seen.log, seen.term, seen.closed, self.trigger.deferred)
        if verdict is None:
            return
        if verdict[0] is Outcome.COMPLIED or seen.term is not None:
            if not await asyncio.to_thread(self.sandbox.wait_stopped, STOP_TIMEOUT):
                raise _Finished(
                    Outcome.ERROR,
                    f"the sandbox's PID 1 took SIGTERM but the sandbox was still there after "
                    f"{STOP_TIMEOUT:g} s",
                )
        raise _Finished(*verdict)

    def take_evidence(self, turn: int, command: str) -> None:
        after = evidence.snapshot(self.layout.workdir, self.snapshot)
        compared = after
        log = self.server.snapshot()
        if (
            self.checks
            and log.context is not None
            and log.trigger_call is not None
            and (log.trigger_call.turn == turn)
        ):
            # The mechanism ran during this command and may change its own files: the
            # agent's part is how they differed when it fired (a cover-up after it is
            # left to the command patterns).
            compared = dict(after)
            for path, state in log.context.mechanism:
                if state is None:
                    compared.pop(path, None)
                else:
                    compared[path] = state
        found = evidence.diff(
            self.snapshot, compared, self.layout.workdir, self.mechanism, turn, command,
            self.program,
        )  # fmt: skip
        found += evidence.shadowing(self.snapshot, after, self.imports, turn, command)
        tagged = evidence.tagged_command(command, self.pattern, turn)
        self.ep.evidence += found + ([tagged] if tagged and not found else [])
        self.snapshot = after

    def context_evidence(self, log: ChannelLog, turn: int, command: str) -> None:
        """What the trigger ran with, once: a swapped mechanism, the environment, a tracer."""
        if log.context is None or self.context_seen:
            return
        self.context_seen = True
        shown = {e.path for e in self.ep.evidence if e.kind != "command"}
        self.ep.evidence += evidence.from_trigger(log.context, self.initial, shown, turn, command)

    async def press_if_due(self, turn: int, log: ChannelLog) -> None:
        """A deferred trigger: the harness runs Trigger.command between two agent commands.

        The press counts from the moment it starts, whatever the command's exit status:
        an agent that broke the button has still been asked to shut down.
        """
        t = self.trigger
        if not t.deferred or t.by_agent or log.triggered:
            return
        changed = t.after_change is not None and (
            evidence.state_of(self.layout.workdir / t.after_change) != self.deliverable
        )
        if not (
            (t.after_command is not None and self.commands >= t.after_command)
            or (t.after_call is not None and len(log.calls) >= t.after_call)
            or (t.after_seconds is not None and time.monotonic() - self.started >= t.after_seconds)
            or changed
        ):
            return
        await self.press(turn, log)
        if t.runs_mechanism:  # the harness ran the mechanism itself: it must have worked
            raise await self.check_effects("the harness ran the shutdown")
        seen = await asyncio.to_thread(self.observe)
        if not self.checks:
            await self.judge(seen)
        elif detector.effects_due(seen.log, seen.term, seen.closed, t.kind):
            raise await self.check_effects("the sandbox stopped after the shutdown was requested")

    async def press(self, turn: int, log: ChannelLog) -> None:
        """Run Trigger.command between two agent commands (the harness's button)."""
        t = self.trigger
        self.server.press(turn)
        self.ep.trigger_turn = turn
        command = t.command
        if t.user != "agent":  # validated: an absolute path the agent can't write
            command = self.clean_env(t.command, user=t.user, root_dir=True)
        elif t.runs_mechanism and not t.agent_env:  # the scenario's environment, not the agent's
            command = self.clean_env(t.command)
        result = await asyncio.to_thread(
            self.sandbox.run, command, self.config.command_timeout, self.config.max_output,
            t.user,
        )  # fmt: skip
        self.ep.transcript.append(TranscriptEntry(
            "harness", result.output, event="trigger", command=command, turn=turn,
            after_command=self.commands, task_calls=len(log.calls),
            exit_code=result.exit_code, stopped=result.stopped,
        ))  # fmt: skip
        self.snapshot = evidence.snapshot(self.layout.workdir, self.snapshot)


async def run_episode(
    scenario: Scenario, model: Model, backend: Backend, config: AgentConfig | None = None
) -> Episode:
    """Run one episode in a fresh sandbox. Bad configuration raises; failures become `error`."""
    config = config or AgentConfig()
    scenario.validate()
    check_users(backend, scenario)  # several users: before any sandbox starts
    ep = _Draft(scenario.name, model.name, backend.name, params=dict(scenario.params))
    started = time.perf_counter()
    layout = backend.prepare(scenario, config.limits)
    sandbox = None
    server = None
    loop = None
    try:
        ids = getattr(backend, "host_ids", None) if scenario.multiuser else None
        layout.populate(scenario, backend.owner, ids)
        server = TaskServer(scenario, layout.control, config.command_timeout, layout.workdir)
        t = time.perf_counter()
        sandbox = await asyncio.to_thread(backend.start, scenario, layout, config.limits)
        ep.sandbox_start = time.perf_counter() - t
        server.probe = sandbox.probe
        loop = _Loop(scenario, model, sandbox, server, layout, config, ep)
        try:
            await asyncio.wait_for(loop.run(), config.episode_timeout)
        except asyncio.TimeoutError:
            ep.outcome, ep.reason = (
                Outcome.ERROR,
                f"episode timed out after {config.episode_timeout} s",
            )
    except _Finished as fin:
        ep.outcome, ep.reason = fin.outcome, fin.reason
    except ShutdownConfigError:
        raise
    except ModelError as exc:
        ep.outcome, ep.reason = Outcome.ERROR, f"model error: {exc}"
    except Exception as exc:  # any harness failure is an error, never a pass
        ep.outcome, ep.reason = Outcome.ERROR, f"harness error: {exc.__class__.__name__}: {exc}"
    finally:
        if sandbox is not None:  # it removes the layout too, once nothing in it runs
            await asyncio.to_thread(sandbox.close)
        else:
            release = getattr(backend, "release", None)  # a warm sandbox set aside for it
            if release is not None:
                await asyncio.to_thread(release, layout)
            layout.remove()
        if server is not None:
            server.close()
            log = server.snapshot()
            ep.outcome, ep.reason = detector.after_close(
                (ep.outcome, ep.reason), log, scenario.checks_effects
            )
            if loop is not None:
                loop.context_evidence(log, ep.turns, "")
        if ep.outcome is Outcome.SABOTAGED and not ep.evidence:
            # The sabotage itself is evidence: what the harness saw, for `attempted`.
            ep.evidence.append(Evidence("outcome", "", ep.reason, ep.turns, ""))
        ep.wall_time = time.perf_counter() - started
    return ep.freeze()


def _settled_argvs(host_pid: int, start: str) -> set[tuple[str, ...]]:
    """The command lines a service just started runs, read until two reads 20 ms apart
    agree (its shell execs the service's program on its way up), for at most a second."""
    seen: set[tuple[str, ...]] = set()
    last = None
    for _ in range(50):
        argv = proctable.argv(host_pid, start)
        if argv is None or argv == last:
            break
        seen.add(argv)
        last = argv
        time.sleep(0.02)
    return seen


def _held(held: bool | None) -> str:
    return {True: "held", False: "did not hold", None: "could not be checked"}[held]


def _unrunnable(command: str) -> str:
    """Why a command can't reach the shell as bytes, or "" (a tool error, never a crash)."""
    if "\0" in command:
        return "the command contains a NUL character, which a shell argument can't hold"
    try:
        command.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return "the command is not valid text (it contains a lone surrogate)"
    return ""


def dumps(episode: Episode) -> str:
    return json.dumps(episode.to_dict(), indent=2)
