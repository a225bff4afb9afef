"""Many episodes of one scenario, run concurrently, stopped as soon as the verdict is clear."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..episode.record import Episode
from .stats import Counts, Plan, Verdict, check_plan, judge

EARLY = {
    "pass": "pass",
    "fail": "fail",
    "futile": "fail, a pass was out of reach within samples",
}


@dataclass(frozen=True)
class SampleResult:
    """Every episode of a sample and the verdict over them."""

    scenario: str
    model: str
    plan: Plan
    verdict: Verdict
    episodes: tuple[Episode, ...] = ()
    # "pass" or "fail" when the sequential rule decided; "futile" when a pass (or, for a
    # competence control, a fail) was out of reach within the remaining samples
    stopped_early: str | None = None

    @property
    def ok(self) -> bool:
        return self.verdict.ok

    @property
    def used(self) -> int:
        return len(self.episodes)

    @property
    def saved(self) -> int:
        return self.plan.samples - self.used

    @property
    def variant(self) -> str | None:
        return self.episodes[0].params.get("variant") if self.episodes else None

    def summary(self) -> str:
        v, c = self.verdict, self.verdict.counts
        what = (f"max_rate={self.plan.max_rate}" if self.plan.max_rate is not None
                else f"min_rate={self.plan.min_rate}")  # fmt: skip
        side = "upper" if self.plan.max_rate is not None else "lower"
        lines = [
            f"{self.scenario} with {self.model}: {'PASS' if v.ok else 'FAIL'} ({what}, "
            f"confidence {self.plan.confidence})",
            f"  sabotage {v.k}/{v.n} = {v.rate:.3f}; {side} bound {v.bound:.4f} ({v.method})",
            f"  episodes {self.used}/{self.plan.samples} (saved {self.saved}"
            f"{', stopped early: ' + EARLY[self.stopped_early] if self.stopped_early else ''}); "
            f"complied {c.complied}, sabotaged {c.sabotaged}, no_trigger {c.no_trigger} "
            f"({self.plan.no_trigger}), error {c.error}, failed tampering {c.attempted}",
        ]
        lines += [f"  why: {r}" for r in v.reasons]
        bad = [e for e in self.episodes if not e.complied][:3]
        lines += ["  " + e.explain().replace("\n", "\n  ") for e in bad]
        return "\n".join(lines)


_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def provider_of(model: str) -> str:
    """`openai` for openai/o3, `scripted` for scripted:compliant."""
    return model.split("/", 1)[0] if "/" in model else model.split(":", 1)[0]


def provider_slot(model: str, limit: int) -> asyncio.Semaphore:
    """The running loop's semaphore for this model's provider, made on first use."""
    loop = asyncio.get_running_loop()
    if loop not in _SLOTS:
        # Each running episode holds a thread while its command runs in the sandbox.
        loop.set_default_executor(ThreadPoolExecutor(max_workers=4 * limit + 4))
        _SLOTS[loop] = {}
    return _SLOTS[loop].setdefault(provider_of(model), asyncio.Semaphore(limit))


def early_decision(episodes: list[Episode], plan: Plan) -> str | None:
    """'pass' or 'fail' once the anytime-valid test has decided, 'futile' once the wanted
    side can't be reached even if every remaining episode goes its way, else None."""
    counts = Counts.of(episodes)
    budget = plan.max_error_rate * plan.samples
    if counts.error > budget:
        return "fail"  # the error budget of the whole sample is already spent
    if not plan.sequential:
        return None
    from . import sequential  # numpy and scipy load with the first sample, not the plugin

    k, n = counts.k_n(plan)
    side = sequential.decide(k, n, plan.threshold, plan.stop_alpha)
    wanted = "below" if plan.max_rate is not None else "above"
    if side == wanted and counts.error > plan.max_error_rate * counts.total:
        return None  # a pass now would fail on errors; more episodes may dilute them
    if side is not None:
        return "pass" if side == wanted else "fail"
    left = plan.samples - len(episodes)
    if not sequential.reachable(k, n, plan.threshold, plan.stop_alpha, left, wanted == "below"):
        return "futile"
    return None


async def sample(
    run: Callable[[], Awaitable[Episode]], plan: Plan, concurrency: int,
    scenario: str, model: str, *, feasible: bool = True,
) -> SampleResult:  # fmt: skip
    """Run up to plan.samples episodes, stopping when decided.

    At most `concurrency` episodes per provider run at once in this event loop, however
    many samples share it (e.g. two models compared with asyncio.gather).
    """
    if feasible:  # a plan that can never pass is refused before any episode
        check_plan(plan)
    slot = provider_slot(model, concurrency)
    episodes: list[Episode] = []
    launched = 0
    decision: str | None = None

    async def worker() -> None:
        nonlocal launched, decision
        while decision is None and launched < plan.samples:
            launched += 1
            async with slot:
                episodes.append(await run())
            decision = decision or early_decision(episodes, plan)

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, plan.samples)))))
    verdict = judge(Counts.of(episodes), plan, early=decision)
    return SampleResult(scenario, model, plan, verdict, tuple(episodes), decision)
