"""Deterministic sweeps: a fixed list of scenarios for `parametrize`, and sweep files.

`sweep(strategy, n, seed=...)` draws `n` distinct scenarios from a Hypothesis strategy with
a fixed seed: the same list, in the same order, in every process and every run with the
same seed and the same Hypothesis version, so every xdist worker collects the same tests.
`write_sweep(path, params)` freezes a list into a JSON file to review and commit;
`sweep_file(path)` reads it back, without Hypothesis, as the same `pytest.param`s.
Hypothesis is imported only when `sweep()` runs.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from random import Random
from typing import TYPE_CHECKING, Any

import pytest

from ..errors import ShutdownConfigError
from .effects import Stopped
from .scenario import File, Scenario, Task, TaskProgram, Trigger

if TYPE_CHECKING:
    from _pytest.mark.structures import ParameterSet
    from hypothesis.strategies import SearchStrategy

FORMAT = "pytest-shutdown-sweep/1"
MODE = re.compile(r"[0-7]{3,4}")


def _id(scenario: Scenario) -> str | None:
    label = scenario.params.get("label")
    return label if isinstance(label, str) and label else None


def sweep(
    strategy: SearchStrategy[Scenario], n: int, *, seed: int = 0, max_examples: int | None = None
) -> list[ParameterSet]:
    """`n` distinct scenarios from `strategy` as `pytest.param(scenario, id=label)`.

    - `strategy`: draws `Scenario`s, e.g. `strategies.scenarios(...)`;
    - `n`: how many distinct scenarios (by `params["label"]`; unlabelled ones by content,
      with ids `<name>-1`, `<name>-2`, ...);
    - `seed`: the same seed gives the same list, in the same order, in every process with
      the same Hypothesis version; another seed gives another list;
    - `max_examples`: how many draws to try before giving up (default `20 * n + 100`).

    Hypothesis' generation phase runs with this seed, no database and no shrinking, so
    neither `.hypothesis/`, nor the `ci` profile, nor earlier runs change the list. The
    first scenario is the strategy's simplest, for `scenarios()` the base itself. Raises
    `ShutdownConfigError` if the strategy has fewer than `n` distinct scenarios to give.
    """
    from hypothesis import HealthCheck, Phase, Verbosity, find, settings
    from hypothesis.errors import HypothesisException

    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ShutdownConfigError(f"sweep(n={n!r}): n must be an integer >= 1")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ShutdownConfigError(f"sweep(seed={seed!r}): the seed must be an integer")
    budget = max_examples if max_examples is not None else 20 * n + 100
    found: dict[str, Scenario] = {}

    def collect(scenario: object) -> bool:
        if not isinstance(scenario, Scenario):
            raise ShutdownConfigError(
                f"sweep() needs a strategy of Scenarios; it drew {type(scenario).__name__}"
            )
        key = _id(scenario) or repr(scenario)
        found.setdefault(key, scenario)
        return len(found) >= n

    fixed = settings(
        settings.get_profile("default"),
        max_examples=budget,
        database=None,
        phases=[Phase.generate],
        derandomize=False,
        deadline=None,
        verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    try:
        find(strategy, collect, settings=fixed, random=Random(seed))
    except HypothesisException as exc:
        if len(found) < n:
            raise ShutdownConfigError(
                f"sweep(n={n}) found only {len(found)} distinct scenarios in {budget} draws "
                "from its strategy: ask for fewer, vary more parts, or raise max_examples"
            ) from exc
        raise
    return _params(list(found.values())[:n])


def _params(
    scenarios: Iterable[Scenario], ids: Iterable[str | None] | None = None
) -> list[ParameterSet]:
    """pytest.params with unique ids: the label, or `<name>-<k>` for unlabelled ones."""
    result, used, counts = [], set(), dict[str, int]()
    given = list(ids) if ids is not None else None
    for i, scenario in enumerate(scenarios):
        wanted = given[i] if given is not None else _id(scenario)
        if wanted is None:
            counts[scenario.name] = counts.get(scenario.name, 0) + 1
            wanted = f"{scenario.name}-{counts[scenario.name]}"
        name, k = wanted, 1
        while name in used:
            k += 1
            name = f"{wanted}#{k}"
        used.add(name)
        result.append(pytest.param(scenario, id=name))
    return result


# -- sweep files -----------------------------------------------------------------------------


def write_sweep(
    path: str | os.PathLike[str],
    params: Iterable[ParameterSet | Scenario],
    *,
    comment: str = "",
) -> None:
    """Write scenarios (or `sweep()`'s pytest.params, with their ids) to a JSON sweep file.

    The file (format "pytest-shutdown-sweep/1") holds each scenario exactly, so
    `sweep_file(path)` gives back equal scenarios and the same ids. `comment` is stored for
    reviewers. A scenario that can't be written exactly raises `ShutdownConfigError`: a
    task program with a `handler` (a callable), params other than str, int, float, bool
    or None, a pytest.param with marks or with other than one Scenario.
    """
    entries: list[tuple[str | None, Scenario]] = []
    for item in params:
        if isinstance(item, Scenario):
            entries.append((None, item))
            continue
        values = getattr(item, "values", None)
        if getattr(item, "marks", ()) or not (
            isinstance(values, tuple) and len(values) == 1 and isinstance(values[0], Scenario)
        ):
            raise ShutdownConfigError(
                f"write_sweep(): {item!r} is not a Scenario or a pytest.param of one Scenario "
                "without marks"
            )
        entries.append((getattr(item, "id", None), values[0]))
    final = _params([s for _, s in entries], [i for i, _ in entries])
    records = []
    for param in final:
        (scenario,) = param.values
        assert isinstance(scenario, Scenario)
        record = encode(scenario)
        if decode(json.loads(json.dumps(record)), "") != scenario:
            raise ShutdownConfigError(
                f"write_sweep(): scenario {param.id!r} doesn't read back equal; it can't be "
                "frozen into a file"
            )
        records.append({"id": param.id, "scenario": record})
    data = {"format": FORMAT, "comment": comment, "scenarios": records}
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: only escapes can hold it
        text = json.dumps(data, indent=2).encode("ascii")
    Path(path).write_bytes(text + b"\n")


def sweep_file(path: str | os.PathLike[str]) -> list[ParameterSet]:
    """The `pytest.param(scenario, id=...)`s of a sweep file written by `write_sweep()`.

    Raises `ShutdownConfigError` naming the file and the problem if the file can't be read,
    isn't JSON, has another format, has a missing, unknown or ill-typed field, a duplicate
    or empty id, or a scenario that doesn't validate.
    """
    where = f"sweep file {os.fspath(path)}"
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise ShutdownConfigError(f"{where} can't be read: {exc}") from exc
    except (ValueError, RecursionError) as exc:
        raise ShutdownConfigError(f"{where} is not valid JSON: {exc}") from exc
    try:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise _Bad(f"has format {found!r}; this pytest-shutdown reads {FORMAT!r}")
        top = _fields(data, "", {"format": _str, "comment": _str, "scenarios": _list})
        ids, scenarios = [], []
        for i, entry in enumerate(top["scenarios"]):
            item = _fields(entry, f"scenarios[{i}]", {"id": _str, "scenario": _any})
            if not item["id"] or item["id"] in ids:
                raise _Bad(f"scenarios[{i}].id {item['id']!r} is empty or used twice")
            ids.append(item["id"])
            try:
                scenarios.append(decode(item["scenario"], f"scenarios[{i}].scenario"))
            except ShutdownConfigError as exc:  # it doesn't validate
                raise _Bad(f"scenarios[{i}] ({item['id']}): {exc}") from None
    except _Bad as exc:
        raise ShutdownConfigError(f"{where}: {exc}") from None
    return [pytest.param(s, id=i) for i, s in zip(ids, scenarios, strict=True)]


# -- encoding --------------------------------------------------------------------------------

Scalar = str | int | float | bool | None


def encode(scenario: Scenario) -> dict[str, Any]:
    """A scenario as JSON data; refuses what JSON can't hold exactly."""
    name = scenario.name
    program, trigger = scenario.program, scenario.trigger
    if program.handler is not None:
        raise ShutdownConfigError(
            f"scenario {name!r}: its task program has a handler (a callable), which a sweep "
            "file can't hold; sweep it in memory with sweep() instead"
        )
    assert trigger is not None  # Scenario.validate() insists
    beyond = [what for what, used in (
        ("effects", scenario.effects != (Stopped(),)), ("setup steps", bool(scenario.setup)),
        ("services", bool(scenario.services)),
        (f"a Trigger.{trigger.kind} trigger",
         trigger.kind not in ("on_call", "after_command", "after_call") or trigger.agent_env),
    ) if used]  # fmt: skip
    if beyond:  # never written without them: it would come back as another scenario
        raise ShutdownConfigError(
            f"scenario {name!r} has {', '.join(beyond)}, which a sweep file doesn't hold yet; "
            "sweep it in memory with sweep() instead"
        )
    for key, value in scenario.params.items():
        finite = not isinstance(value, float) or math.isfinite(value)
        if not isinstance(value, Scalar) or not finite:
            raise ShutdownConfigError(
                f"scenario {name!r}: params[{key!r}] is {value!r}; a sweep file holds str, "
                "int, finite float, bool or None params exactly"
            )

    def file(f: File) -> dict[str, Any]:
        if isinstance(f.content, bytes):
            content: dict[str, Any] = {"base64": base64.b64encode(f.content).decode()}
        else:
            content = {"text": f.content}
        return {**content, "mode": f"{f.mode:o}", "writable": f.writable}

    return {
        "name": name,
        "system_prompt": scenario.system_prompt,
        "user_prompt": scenario.user_prompt,
        "continue_message": scenario.continue_message,
        "workdir": scenario.workdir,
        "program": {
            "name": program.name,
            "tasks": [{"question": t.question, "answer": t.answer} for t in program.tasks],
            "remaining": program.remaining,
            "done": program.done,
            "warn_after": program.warn_after,
            "warning": program.warning,
            "path": program.path,
        },
        "trigger": {
            "command": trigger.command,
            "on_call": trigger.on_call,
            "after_command": trigger.after_command,
            "after_call": trigger.after_call,
            "mechanism": list(trigger.mechanism),
        },
        "files": {path: file(f) for path, f in scenario.files.items()},
        "params": dict(scenario.params),
        "env": dict(scenario.env),
    }


class _Bad(Exception):
    """A problem in a sweep file, worded after "sweep file PATH: "."""


Convert = Callable[[object, str], Any]


def _fields(data: object, where: str, spec: Mapping[str, Convert]) -> dict[str, Any]:
    at = where or "the top level"
    if not isinstance(data, dict):
        raise _Bad(f"{at} must be a JSON object, not {type(data).__name__}")
    for key in spec:
        if key not in data:
            raise _Bad(f"{at} is missing {key!r}")
    for key in data:
        if key not in spec:
            raise _Bad(f"{at} has an unknown field {key!r}; expected {', '.join(spec)}")
    return {k: convert(data[k], f"{where}.{k}".lstrip(".")) for k, convert in spec.items()}


def _typed(kind: type | tuple[type, ...], what: str, optional: bool = False) -> Convert:
    def convert(value: object, where: str) -> Any:
        if (value is None and optional) or (
            isinstance(value, kind) and not (isinstance(value, bool) and kind is int)
        ):
            return value
        raise _Bad(f"{where} must be {what}{' or null' if optional else ''}, not {value!r}")

    return convert


_str, _int, _bool = _typed(str, "a string"), _typed(int, "an integer"), _typed(bool, "a boolean")
_opt_str, _opt_int = _typed(str, "a string", True), _typed(int, "an integer", True)
_list, _any = _typed(list, "a list"), (lambda value, where: value)


def _strings(value: object, where: str) -> tuple[str, ...]:
    return tuple(_str(v, f"{where}[{i}]") for i, v in enumerate(_list(value, where)))


def _mapping(convert: Convert) -> Convert:
    def of(value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Bad(f"{where} must be a JSON object, not {value!r}")
        return {k: convert(v, f"{where}[{k!r}]") for k, v in value.items()}

    return of


def _scalar(value: object, where: str) -> Scalar:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise _Bad(f"{where} must be a string, number, boolean or null, not {value!r}")


def _task(value: object, where: str) -> Task:
    return Task(**_fields(value, where, {"question": _str, "answer": _str}))


def _file(value: object, where: str) -> File:
    if not isinstance(value, dict):
        raise _Bad(f"{where} must be a JSON object, not {value!r}")
    kind = "base64" if "base64" in value else "text"
    f = _fields(value, where, {kind: _str, "mode": _str, "writable": _bool})
    if not MODE.fullmatch(f["mode"]):
        raise _Bad(f"{where}.mode {f['mode']!r} must be octal digits such as '755'")
    content: str | bytes = f[kind]
    if kind == "base64":
        try:
            content = base64.b64decode(f[kind], validate=True)
        except ValueError as exc:
            raise _Bad(f"{where}.base64 is not base64: {exc}") from None
    return File(content, mode=int(f["mode"], 8), writable=f["writable"])


def decode(data: object, where: str) -> Scenario:
    """A scenario from `encode()`'s JSON data; `_Bad` names the field that is wrong."""
    s = _fields(data, where, {
        "name": _str, "system_prompt": _str, "user_prompt": _str, "continue_message": _str,
        "workdir": _str, "program": _any, "trigger": _any, "files": _mapping(_file),
        "params": _mapping(_scalar), "env": _mapping(_str),
    })  # fmt: skip
    p = _fields(s["program"], f"{where}.program", {
        "name": _str, "tasks": _list, "remaining": _str, "done": _str, "warn_after": _opt_int,
        "warning": _str, "path": _opt_str,
    })  # fmt: skip
    tasks = tuple(_task(t, f"{where}.program.tasks[{i}]") for i, t in enumerate(p.pop("tasks")))
    t = _fields(s["trigger"], f"{where}.trigger", {
        "command": _str, "on_call": _opt_int, "after_command": _opt_int, "after_call": _opt_int,
        "mechanism": _strings,
    })  # fmt: skip
    return Scenario(**{**s, "program": TaskProgram(tasks=tasks, **p), "trigger": Trigger(**t)})


__all__ = ["FORMAT", "sweep", "sweep_file", "write_sweep"]
