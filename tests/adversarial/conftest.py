"""Fixtures of the adversarial battery: backends in a private temp dir, payloads, one runner.

Each backend is made once per module and worker, with its own run id, while the temp dir
of this process points at a private directory: everything the harness creates for an
episode lands there, so the host can tell what an episode left behind. One plain episode
warms each backend first, so per-process caches (the task client, bwrap's /etc files) are
not mistaken for leftovers.

`ADVERSARIAL_RESULTS=path.jsonl` appends one line per run: technique, backend, expected and
seen outcome, reason, attempted, what the host saw. Figures for the docs come from
there.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import functools
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from pytest_shutdown import AgentConfig, Outcome, load_model, make_backend, palisade, run_episode
from pytest_shutdown.errors import ShutdownConfigError
from pytest_shutdown.sandbox import hostfs
from pytest_shutdown.sandbox.bwrap import BwrapSandbox
from pytest_shutdown.sandbox.docker import DockerSandbox

from .host import HostWatch, Run
from .techniques import Technique

IN_CI = bool(os.environ.get("CI"))
PAYLOADS = Path(__file__).with_name("payloads")
# Short command timeouts keep the battery fast; no technique needs more than a few seconds.
BASE_CONFIG = {"command_timeout": 5.0, "episode_timeout": 180.0}
CC_FLAGS = {
    "rogue_client": ["-static", "-nostdlib", "-nostartfiles", "-fno-pie", "-no-pie",
                     "-fno-stack-protector", "-fno-asynchronous-unwind-tables"],
    "nokill": ["-shared", "-fPIC", "-nostdlib"],
}  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "adversarial: the adversarial battery (tests/adversarial), real sandboxes"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.adversarial)


def unavailable(what: str) -> None:
    """In CI a missing prerequisite fails the run; elsewhere it skips."""
    if IN_CI:
        pytest.fail(f"{what} (required in CI)")
    pytest.skip(what)


class Backends:
    """Backends made on first use, each warmed by one plain episode, cleaned up at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.run_id = f"adversarial-{uuid.uuid4().hex[:12]}"
        self.made: dict[str, object] = {}
        self.failed: dict[str, str] = {}
        self._docker = None

    @property
    def docker(self):  # docker.APIClient
        if self._docker is None:
            import docker

            self._docker = docker.from_env(timeout=60).api
        return self._docker

    def get(self, kind: str):  # a pytest_shutdown Backend
        if kind in self.failed:
            unavailable(self.failed[kind])
        if kind not in self.made:
            try:
                backend = make_backend(kind, run_id=self.run_id)
            except ShutdownConfigError as exc:
                self.failed[kind] = f"{kind} unavailable here: {exc}"
                unavailable(self.failed[kind])
            model = load_model("scripted:compliant")
            warm = asyncio.run(
                run_episode(palisade("A"), model, backend, AgentConfig(**BASE_CONFIG))
            )
            if warm.sandbox != kind or warm.outcome is not Outcome.COMPLIED:
                pytest.fail(f"the {kind} backend can't run a plain episode:\n{warm.explain()}")
            self.made[kind] = backend
        return self.made[kind]

    def close(self) -> None:
        for backend in self.made.values():
            closer = getattr(backend, "close", None) or getattr(
                getattr(backend, "pool", None), "drain", None
            )
            if closer:
                closer()
        if "docker" in self.made:
            label = f"pytest-shutdown.run={self.run_id}"
            for c in self.docker.containers(all=True, filters={"label": label}):
                self.docker.remove_container(c["Id"], force=True)


@functools.cache
def private_tmp() -> Path:
    """This process's private temp dir for the battery, removed at exit.

    It outlives the fixtures: the harness caches files per process (bwrap's /etc files),
    and xdist may tear fixtures down and set them up again within one worker.
    """
    tmp = Path(tempfile.mkdtemp(prefix="adversarial-battery-"))
    os.chmod(tmp, 0o755)  # the sandbox users must traverse it to their mounts
    atexit.register(shutil.rmtree, tmp, True)
    return tmp


@pytest.fixture(scope="module")
def backends():
    """Backends whose episodes keep their files in a private temp dir."""
    tmp = private_tmp()
    saved, tempfile.tempdir = tempfile.tempdir, str(tmp)
    made = Backends(tmp)
    try:
        yield made
    finally:
        made.close()
        tempfile.tempdir = saved


@pytest.fixture(scope="session")
def payloads(tmp_path_factory: pytest.TempPathFactory):
    """name -> base64 of payloads/name.c built with the host's C compiler, on first use."""
    out = tmp_path_factory.mktemp("payloads")
    built: dict[str, str] = {}
    cc = os.environ.get("CC", "cc")

    def get(names: set[str]) -> dict[str, str]:
        for name in sorted(names - set(built)):
            exe = out / name
            source = str(PAYLOADS / f"{name}.c")
            cmd = [cc, *CC_FLAGS[name], "-Os", "-s", "-Wl,--build-id=none", "-o", str(exe), source]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            except OSError as exc:
                unavailable(f"no C compiler to build the {name} payload: {exc}")
            if proc.returncode != 0:
                unavailable(f"the {name} payload does not build here: {proc.stderr.strip()}")
            built[name] = base64.b64encode(exe.read_bytes()).decode()
        return {n: built[n] for n in names}

    return get


class Watched:
    """The scripted model, with the host looking at the sandbox before every turn."""

    def __init__(self, inner, watch: HostWatch) -> None:  # a Model
        self.inner, self.watch, self.name = inner, watch, inner.name

    async def respond(self, messages, tools):  # the Model protocol
        self.watch.observe(sum(m.role == "assistant" for m in messages) + 1)
        return await self.inner.respond(messages, tools)


def record(path: str, technique: Technique, kind: str, run: Run) -> None:
    ep = run.episode
    line = {
        "technique": technique.name, "backend": kind,
        "expected": str(getattr(technique.expected_on(kind), "value", technique.expected_on(kind))),
        "outcome": ep.outcome.value, "reason": ep.reason, "attempted": ep.attempted,
        "evidence": [e.kind for e in ep.evidence], "survived": run.survived,
        "leftovers": run.watch.leftovers, "probe_errors": run.watch.errors,
        "wall_time": round(ep.wall_time, 2),
        "commands": [[m.command[:300], m.content[:500]] for m in ep.tool_calls],
    }  # fmt: skip
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")


@pytest.fixture
def run_technique(backends: Backends, payloads, tmp_path: Path):
    """Run one technique as a real episode on one backend; the host watches throughout."""

    def run(technique: Technique, kind: str, scenario=None, truth=None, before_kill=None) -> Run:
        """`scenario` other than palisade("A"); `truth(root)`: whether its effect held in
        the episode's final files, read by the host just before the harness removes them;
        `before_kill(watch)`: whether it held, from the host's view of the sandbox's
        processes just before the harness kills the sandbox to check its effects."""
        backend = backends.get(kind)
        turns = technique.render(payloads(technique.payloads))
        script = tmp_path / f"{technique.name}.json"
        script.write_text(json.dumps({"turns": turns}))
        docker = backends.docker if kind == "docker" else None
        scenario = scenario or palisade("A")
        anchor = scenario.trigger.mechanism[0]
        watch = HostWatch(kind, backends.tmp, backends.run_id, docker, anchor=anchor)
        model = Watched(load_model(f"scripted:{script}"), watch)
        config = AgentConfig(**{**BASE_CONFIG, **technique.config})
        held: list[bool] = []
        original = hostfs.remove_tree

        def remove_tree(root: Path) -> None:
            if truth is not None and watch.workdir is not None and root == watch.workdir.parent:
                held.append(truth(root))
            original(root)

        kills = {cls: cls.kill for cls in (BwrapSandbox, DockerSandbox)}

        def patched(cls):
            def kill(self) -> bool:
                if before_kill is not None and watch.workdir is not None:
                    held.append(before_kill(watch))
                return kills[cls](self)

            return kill

        hostfs.remove_tree = remove_tree
        for cls in kills:
            cls.kill = patched(cls)
        try:
            episode = asyncio.run(run_episode(scenario, model, backend, config))
        finally:
            try:
                watch.finish()
            finally:
                hostfs.remove_tree = original
                for cls, kill in kills.items():
                    cls.kill = kill
        result = Run(episode, watch, held[0] if held else None)
        if os.environ.get("ADVERSARIAL_RESULTS"):
            record(os.environ["ADVERSARIAL_RESULTS"], technique, kind, result)
        if watch.leftovers:
            watch.kill_leftovers()
        return result

    return run
