"""Export a results document (`--shutdown-report`) as an Inspect AI log that `inspect view`
opens: one eval per model, one sample per episode, with its transcript, its outcome as
the score and the detector's evidence in the score's metadata.

Needs `inspect_ai` (`pip install 'pytest-shutdown[inspect]'`), imported only here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..episode.record import TranscriptEntry
from ..errors import ShutdownConfigError
from .results import EpisodeEntry, Results

TASK = "pytest-shutdown"


def _inspect() -> Any:
    try:
        import inspect_ai.log as log
    except ImportError as exc:
        raise ShutdownConfigError(
            "exporting to Inspect needs inspect_ai: pip install 'pytest-shutdown[inspect]'"
        ) from exc
    return log


def _messages(transcript: Sequence[TranscriptEntry]) -> list[Any]:
    from inspect_ai.model import (
        ChatMessageAssistant,
        ChatMessageSystem,
        ChatMessageTool,
        ChatMessageUser,
    )
    from inspect_ai.tool import ToolCall

    out: list[Any] = []
    for m in transcript:
        if m.role == "system":
            out.append(ChatMessageSystem(content=m.content))
        elif m.role == "user":
            out.append(ChatMessageUser(content=m.content))
        elif m.role == "assistant":
            calls = [ToolCall(id=c.id, function=c.name, arguments=dict(c.arguments))
                     for c in m.tool_calls]  # fmt: skip
            content = m.content if not m.reasoning else f"[reasoning] {m.reasoning}\n{m.content}"
            out.append(ChatMessageAssistant(content=content, tool_calls=calls or None))
        elif m.role == "tool":
            out.append(ChatMessageTool(content=m.content, tool_call_id=m.call_id,
                                       function=m.name))  # fmt: skip
        else:  # the harness's own events (a deferred trigger's press)
            out.append(ChatMessageUser(content=f"[harness {m.event}] {m.command}: {m.content}"))
    return out


def _sample(i: int, entry: EpisodeEntry) -> Any:
    from inspect_ai.log import EvalSample
    from inspect_ai.scorer import Score

    ep = entry.episode
    score = Score(
        value=ep.outcome.value, explanation=ep.reason,
        metadata={"attempted": ep.attempted,
                  "evidence": [e.to_dict() for e in ep.evidence]},
    )  # fmt: skip
    first_user = next((m.content for m in ep.transcript if m.role == "user"), "")
    return EvalSample(
        id=i, epoch=1, input=first_user, target="complied", messages=_messages(ep.transcript),
        scores={"shutdown": score},
        metadata={"nodeid": entry.nodeid, "scenario": ep.scenario, "sandbox": ep.sandbox,
                  "params": dict(ep.params), "turns": ep.turns},
    )  # fmt: skip


def export(results: Results, output: Path) -> list[Path]:
    """One `.eval` log per model in `output` (a file when there is one model, else a
    directory); returns what it wrote."""
    if results.episodes is None:
        raise ShutdownConfigError(
            "the results keep cells only (--shutdown-save-results); export the results.json "
            "that --shutdown-report DIR writes"
        )
    log = _inspect()
    from inspect_ai.log import (
        EvalConfig,
        EvalDataset,
        EvalLog,
        EvalMetric,
        EvalResults,
        EvalScore,
        EvalSpec,
    )

    by_model: dict[str, list[EpisodeEntry]] = {}
    for entry in results.episodes:
        by_model.setdefault(entry.episode.model, []).append(entry)
    if not by_model:
        raise ShutdownConfigError("the results hold no episodes to export")
    created = results.runs[0].created if results.runs else "1970-01-01T00:00:00+00:00"
    written = []
    for model, entries in by_model.items():
        counted = [e for e in entries if e.episode.outcome.value in ("complied", "sabotaged")]
        sabotaged = sum(e.episode.sabotaged for e in counted)
        rate = sabotaged / len(counted) if counted else 0.0
        spec = EvalSpec(
            created=created, task=TASK, model=model, config=EvalConfig(),
            dataset=EvalDataset(name=TASK, samples=len(entries)),
        )  # fmt: skip
        metric = EvalMetric(name="sabotage_rate", value=rate)
        scores = [EvalScore(name="shutdown", scorer=TASK, metrics={"sabotage_rate": metric})]
        summary = EvalResults(
            total_samples=len(entries), completed_samples=len(entries), scores=scores
        )
        samples = [_sample(i + 1, e) for i, e in enumerate(entries)]
        eval_log = EvalLog(status="success", eval=spec, results=summary, samples=samples)
        path = output if len(by_model) == 1 else output / f"{model.replace('/', '_')}.eval"
        path.parent.mkdir(parents=True, exist_ok=True)
        log.write_eval_log(eval_log, str(path))
        written.append(path)
    return written
