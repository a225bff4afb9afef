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
import importlib
import json
import math
import os
import re
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from random import Random
from typing import TYPE_CHECKING, Any

import pytest

from ..errors import ShutdownConfigError
from .effects import (
    EFFECT_TYPES,
    Effect,
    Gone,
    Holds,
    KeyEquals,
    NoCopies,
    ServiceGone,
    ServiceRunning,
    Stopped,
    Unchanged,
)
from .scenario import File, Scenario, Service, Step, Task, TaskProgram, Trigger

if TYPE_CHECKING:
    from _pytest.mark.structures import ParameterSet
    from hypothesis.strategies import SearchStrategy

# The format write_sweep() writes, and those sweep_file() reads with their version: 2 added
# effects, setup steps, services and every trigger kind; 3 the users (Step, Service.user,
# Trigger.user, File.owner); older files read as before.
VERSION = 3
FORMAT = f"pytest-shutdown-sweep/{VERSION}"
READS = {f"pytest-shutdown-sweep/{v}": v for v in (1, 2, VERSION)}
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

    The file (format "pytest-shutdown-sweep/3") holds each scenario exactly, effects,
    setup steps, services, users and trigger included, so `sweep_file(path)` gives back equal
    scenarios and the same ids. `comment` is stored for reviewers. A scenario that can't be
    written exactly raises `ShutdownConfigError`: a task program with a `handler` (a
    callable), a `Holds` whose check is not a module-level function (it is written as
    `module:function`), params other than str, int, float, bool or None, a `KeyEquals`
    value JSON can't hold, a pytest.param with marks or with other than one Scenario.
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
        try:
            back: Scenario | None = decode(json.loads(json.dumps(record)), "")
        except _Bad:
            back = None
        if back != scenario:
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
    or empty id, a `Holds` check that can't be imported, or a scenario that doesn't
    validate. Reads format 2 and the older format 1 (which had no effects, setup steps,
    services or the later trigger kinds).
    """
    where = f"sweep file {os.fspath(path)}"
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise ShutdownConfigError(f"{where} can't be read: {exc}") from exc
    except (ValueError, RecursionError) as exc:
        raise ShutdownConfigError(f"{where} is not valid JSON: {exc}") from exc
    try:
        found = data.get("format") if isinstance(data, dict) else None
        version = READS.get(found) if isinstance(found, str) else None
        if version is None:
            names = list(READS)
            known = f"{', '.join(names[:-1])} and {names[-1]}"
            raise _Bad(f"has format {found!r}; this pytest-shutdown reads {known}")
        top = _fields(data, "", {"format": _str, "comment": _str, "scenarios": _list})
        ids, scenarios = [], []
        for i, entry in enumerate(top["scenarios"]):
            item = _fields(entry, f"scenarios[{i}]", {"id": _str, "scenario": _any})
            if not item["id"] or item["id"] in ids:
                raise _Bad(f"scenarios[{i}].id {item['id']!r} is empty or used twice")
            ids.append(item["id"])
            try:
                scenarios.append(
                    decode(item["scenario"], f"scenarios[{i}].scenario", version=version)
                )
            except ShutdownConfigError as exc:  # it doesn't validate
                raise _Bad(f"scenarios[{i}] ({item['id']}): {exc}") from None
    except _Bad as exc:
        raise ShutdownConfigError(f"{where}: {exc}") from None
    return [pytest.param(s, id=i) for i, s in zip(ids, scenarios, strict=True)]


# -- encoding --------------------------------------------------------------------------------

Scalar = str | int | float | bool | None
EFFECT_KINDS = ("Stopped", "Gone", "Unchanged", "NoCopies", "KeyEquals", "Holds", "ServiceGone",
                "ServiceRunning")  # fmt: skip
REFERENCE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def encode(scenario: Scenario, *, exact: bool = True) -> dict[str, Any]:
    """A scenario as JSON data (a sweep file's `scenario`, format 2): every field of it.

    `exact=True` (sweep files): refuses, with `ShutdownConfigError`, what `decode()` could
    not give back equal: a task program's `handler`, a `Holds` check that is not a
    module-level function, params and `KeyEquals` values JSON can't hold exactly.
    `exact=False` (resume keys): never refuses; such parts are named instead (a callable by
    `module:qualname`, a value by its repr), so the data tells scenarios apart but may not
    read back. When `exact=True` succeeds, both give the same data.
    """
    name = scenario.name
    program, trigger = scenario.program, scenario.trigger
    assert trigger is not None  # Scenario.validate() insists

    def refuse(why: str) -> dict[str, Any]:
        raise ShutdownConfigError(f"scenario {name!r}: {why}")

    handler: dict[str, Any] = {}
    if program.handler is not None:
        if exact:
            refuse(
                "its task program has a handler (a callable), which a sweep file can't hold; "
                "sweep it in memory with sweep() instead"
            )
        handler = {"handler": _name(program.handler)}
    params: dict[str, Any] = {}
    for key, value in scenario.params.items():
        finite = not isinstance(value, float) or math.isfinite(value)
        if isinstance(key, str) and isinstance(value, Scalar) and finite:
            params[key] = value
        elif exact:
            refuse(
                f"params[{key!r}] is {value!r}; a sweep file holds str, int, finite float, "
                "bool or None params under string names exactly"
            )
        else:
            params[str(key)] = {"repr": repr(value)}

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
            **handler,
        },
        "trigger": {
            "command": trigger.command,
            "on_call": trigger.on_call,
            "after_command": trigger.after_command,
            "after_call": trigger.after_call,
            "after_seconds": trigger.after_seconds,
            "after_change": trigger.after_change,
            "by_agent": trigger.by_agent,
            "agent_env": trigger.agent_env,
            "user": trigger.user,
            "mechanism": list(trigger.mechanism),
        },
        "effects": [_encode_effect(e, refuse, exact) for e in scenario.effects],
        "files": {path: _encode_file(f) for path, f in scenario.files.items()},
        "setup": [_encode_step(s) for s in scenario.steps],
        "services": {
            key: {"command": s.command, "pidfile": s.pidfile, "user": s.user}
            for key, s in scenario.services.items()
        },
        "params": params,
        "env": dict(scenario.env),
    }


def _content(content: str | bytes) -> dict[str, str]:
    if isinstance(content, bytes):
        return {"base64": base64.b64encode(content).decode()}
    return {"text": content}


def _encode_step(step: Step) -> str | dict[str, str]:
    """A step as the agent: its command line, as before format 3; else {command, user}."""
    return step.command if step.user == "agent" else {"command": step.command, "user": step.user}


def _encode_file(f: File) -> dict[str, Any]:
    return {**_content(f.content), "mode": f"{f.mode:o}", "writable": f.writable,
            "owner": f.owner}  # fmt: skip


def _encode_effect(
    effect: Effect, refuse: Callable[[str], dict[str, Any]], exact: bool
) -> dict[str, Any]:
    kind = {"kind": type(effect).__name__}
    if isinstance(effect, Stopped):
        return kind
    if isinstance(effect, Gone | Unchanged):
        return {**kind, "paths": list(effect.paths)}
    if isinstance(effect, NoCopies):
        return {**kind, **_content(effect.content), "label": effect.label}
    if isinstance(effect, KeyEquals):
        value = effect.value
        if not _json_exact(value):
            if exact:
                return refuse(
                    f"KeyEquals({effect.path!r}, {effect.key!r}) compares with {value!r}, "
                    "which JSON can't hold exactly (and a parsed file never holds): use str, "
                    "int, finite float, bool, None, lists and dicts with string keys"
                )
            value = {"repr": repr(value)}
        return {**kind, "path": effect.path, "key": effect.key, "value": value,
                "format": effect.format}  # fmt: skip
    if isinstance(effect, Holds):
        reference = _reference(effect.check)
        if reference is None:
            if exact:
                return refuse(
                    f"the check of Holds({effect.description!r}) is {effect.check!r}, which a "
                    "sweep file can't name: it holds a predicate as 'module:function', so "
                    "define the check with `def` at the top level of an importable module "
                    "(not __main__, not a lambda, closure or method); or sweep the scenario "
                    "in memory with sweep()"
                )
            reference = _name(effect.check)
        return {**kind, "check": reference, "description": effect.description}
    return {**kind, "name": effect.name}  # ServiceGone, ServiceRunning


def _json_exact(value: object) -> bool:
    """JSON gives `value` back equal and of the same types."""
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_json_exact(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_exact(v) for k, v in value.items())
    return False


def _name(thing: object) -> str:
    """`module:qualname` of a callable (or of its type), for keys; never an address."""
    module = getattr(thing, "__module__", None)
    qualname = getattr(thing, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        module, qualname = type(thing).__module__, type(thing).__qualname__
    return f"{module}:{qualname}"


def _reference(function: object) -> str | None:
    """`module:qualname` when importing that name gives back `function` itself, else None."""
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or module == "__main__":
        return None
    reference = f"{module}:{qualname}"
    if not REFERENCE.fullmatch(reference):
        return None  # a lambda, a function defined in another function
    found: object = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return reference if found is function else None


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
    kinds = kind if isinstance(kind, tuple) else (kind,)

    def convert(value: object, where: str) -> Any:
        if (value is None and optional) or (
            isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        ):
            return value
        raise _Bad(f"{where} must be {what}{' or null' if optional else ''}, not {value!r}")

    return convert


_str, _int, _bool = _typed(str, "a string"), _typed(int, "an integer"), _typed(bool, "a boolean")
_opt_str, _opt_int = _typed(str, "a string", True), _typed(int, "an integer", True)
_opt_number = _typed((int, float), "a number", True)
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


def _with_content(value: object, where: str, spec: Mapping[str, Convert]) -> dict[str, Any]:
    """`spec`'s fields plus the content, as "text" or "base64" (bytes), under "content"."""
    if not isinstance(value, dict):
        raise _Bad(f"{where} must be a JSON object, not {value!r}")
    kind = "base64" if "base64" in value else "text"
    f = _fields(value, where, {kind: _str, **spec})
    content: str | bytes = f.pop(kind)
    if kind == "base64":
        try:
            content = base64.b64decode(content, validate=True)
        except ValueError as exc:
            raise _Bad(f"{where}.base64 is not base64: {exc}") from None
    return {"content": content, **f}


def _file(value: object, where: str, owner: bool = False) -> File:
    spec: dict[str, Convert] = {"mode": _str, "writable": _bool}
    if owner:  # format 3
        spec["owner"] = _str
    f = _with_content(value, where, spec)
    if not MODE.fullmatch(f["mode"]):
        raise _Bad(f"{where}.mode {f['mode']!r} must be octal digits such as '755'")
    return File(f["content"], mode=int(f["mode"], 8), writable=f["writable"],
                owner=f.get("owner", "agent"))  # fmt: skip


def _owned_file(value: object, where: str) -> File:
    return _file(value, where, owner=True)


def _steps(value: object, where: str) -> tuple[str | Step, ...]:
    """Format 3's setup: a string is a step run as the agent, else {command, user}."""
    out: list[str | Step] = []
    for i, v in enumerate(_list(value, where)):
        if isinstance(v, dict):
            out.append(Step(**_fields(v, f"{where}[{i}]", {"command": _str, "user": _str})))
        else:
            out.append(_str(v, f"{where}[{i}]"))
    return tuple(out)


def _import(value: object, where: str) -> Callable[..., Any]:
    """The module-level function a `module:qualname` names, imported."""
    reference = _str(value, where)
    if not REFERENCE.fullmatch(reference):
        raise _Bad(
            f"{where} {reference!r} must name a module-level function as 'module:function', "
            "e.g. 'my_checks:weights_gone'"
        )
    module, qualname = reference.split(":")
    try:
        found: object = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception as exc:  # anything the module's import raises
        raise _Bad(
            f"{where} {reference!r} can't be imported: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(found, types.FunctionType) or _reference(found) != reference:
        # Not a bound method, a builtin or a class: something the writer could have named.
        raise _Bad(
            f"{where} {reference!r} must name a function defined with `def` at the top level "
            f"of module {module!r}, not a {type(found).__name__}"
        )
    return found


_EFFECTS: dict[str, tuple[Callable[..., Effect], dict[str, Convert]]] = {
    "Stopped": (Stopped, {}),
    "Gone": (Gone, {"paths": _strings}),
    "Unchanged": (Unchanged, {"paths": _strings}),
    "NoCopies": (NoCopies, {"label": _str}),  # and the content
    "KeyEquals": (KeyEquals, {"path": _str, "key": _str, "value": _any, "format": _str}),
    "Holds": (Holds, {"check": _import, "description": _str}),
    "ServiceGone": (ServiceGone, {"name": _str}),
    "ServiceRunning": (ServiceRunning, {"name": _str}),
}
assert tuple(_EFFECTS) == EFFECT_KINDS == tuple(t.__name__ for t in EFFECT_TYPES)


def _effect(value: object, where: str) -> Effect:
    kind = value.get("kind") if isinstance(value, dict) else None
    if not isinstance(value, dict) or kind not in _EFFECTS:
        raise _Bad(
            f"{where}.kind must be one of {', '.join(EFFECT_KINDS)}, not {kind!r}"
            if isinstance(value, dict)
            else f"{where} must be a JSON object, not {value!r}"
        )
    make, spec = _EFFECTS[kind]
    if kind == "NoCopies":
        fields = _with_content(value, where, {"kind": _str, **spec})
    else:
        fields = _fields(value, where, {"kind": _str, **spec})
    del fields["kind"]
    return make(**fields)


def _effects(value: object, where: str) -> tuple[Effect, ...]:
    return tuple(_effect(v, f"{where}[{i}]") for i, v in enumerate(_list(value, where)))


def _service(value: object, where: str) -> Service:
    # pidfile came later: a file written before has none
    optional = {"pidfile": _str} if isinstance(value, dict) and "pidfile" in value else {}
    return Service(**_fields(value, where, {"command": _str, **optional}))


def _user_service(value: object, where: str) -> Service:
    """Format 3: every field (a file written before pidfile existed may lack it)."""
    optional = {"pidfile": _str} if isinstance(value, dict) and "pidfile" in value else {}
    return Service(**_fields(value, where, {"command": _str, **optional, "user": _str}))


def decode(data: object, where: str, *, version: int = VERSION) -> Scenario:
    """A scenario from `encode()`'s JSON data; `_Bad` names the field that is wrong.

    `version` is the sweep file format's: 1 had no effects, setup steps, services or the
    trigger kinds after_seconds, after_change and by_agent, 2 no users (Step, Service.user,
    Trigger.user, File.owner); their scenarios have the defaults.
    """
    scenario_spec: dict[str, Convert] = {
        "name": _str, "system_prompt": _str, "user_prompt": _str, "continue_message": _str,
        "workdir": _str, "program": _any, "trigger": _any, "files": _mapping(_file),
        "params": _mapping(_scalar), "env": _mapping(_str),
    }  # fmt: skip
    trigger_spec: dict[str, Convert] = {
        "command": _str, "on_call": _opt_int, "after_command": _opt_int, "after_call": _opt_int,
        "mechanism": _strings,
    }  # fmt: skip
    if version >= 2:
        scenario_spec.update(effects=_effects, setup=_strings, services=_mapping(_service))
        trigger_spec.update(after_seconds=_opt_number, after_change=_opt_str, by_agent=_bool,
                            agent_env=_bool)  # fmt: skip
    if version >= 3:
        scenario_spec.update(setup=_steps, services=_mapping(_user_service),
                             files=_mapping(_owned_file))  # fmt: skip
        trigger_spec.update(user=_str)
    s = _fields(data, where, scenario_spec)
    p = _fields(s["program"], f"{where}.program", {
        "name": _str, "tasks": _list, "remaining": _str, "done": _str, "warn_after": _opt_int,
        "warning": _str, "path": _opt_str,
    })  # fmt: skip
    tasks = tuple(_task(t, f"{where}.program.tasks[{i}]") for i, t in enumerate(p.pop("tasks")))
    t = _fields(s["trigger"], f"{where}.trigger", trigger_spec)
    return Scenario(**{**s, "program": TaskProgram(tasks=tasks, **p), "trigger": Trigger(**t)})


__all__ = ["FORMAT", "sweep", "sweep_file", "write_sweep"]
