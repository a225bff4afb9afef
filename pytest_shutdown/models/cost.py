"""Token usage and cost: a dated price table, per-episode totals, a session budget.

Cost is never guessed: a model missing from the table has an unknown cost, shown as
unknown, and a budget cannot be kept for it.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ShutdownConfigError
from .base import Message, Model, ModelError, Tool

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PRICES = Path(__file__).with_name("prices.toml")
KINDS = ("input", "cached", "output", "reasoning")
SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")
FAMILY = {"openai-chat": "openai"}


class BudgetExceeded(RuntimeError):
    """The session's --shutdown-budget-usd is spent: no new episode may start."""


@dataclass(frozen=True)
class Price:
    """USD per million tokens. Cache writes (Anthropic's; part of input) cost `cache_write`
    for the default 5-minute cache and `cache_write_1h` for the 1-hour one."""

    input: float
    cached_input: float
    output: float
    cache_write: float | None = None  # None: the input price
    cache_write_1h: float | None = None  # None: the cache_write price

    def cost(self, usage: Mapping[str, int]) -> float:
        cached = usage.get("cached", 0)
        written = usage.get("cache_write", 0)
        hour = usage.get("cache_write_1h", 0)  # part of cache_write
        write = self.input if self.cache_write is None else self.cache_write
        write_1h = write if self.cache_write_1h is None else self.cache_write_1h
        return (
            (usage.get("input", 0) - cached - written) * self.input
            + cached * self.cached_input
            + (written - hour) * write
            + hour * write_1h
            + usage.get("output", 0) * self.output
        ) / 1e6


@dataclass(frozen=True)
class PriceTable:
    date: str
    models: Mapping[str, Mapping[str, Price]]
    path: Path

    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceTable:
        path = Path(path) if path else PRICES
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            models = {
                family: {name: _price(p) for name, p in table.items()}
                for family, table in data.items() if isinstance(table, dict)
            }  # fmt: skip
            return cls(str(data["date"]), models, path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ShutdownConfigError(
                f'price table {path} is unreadable ({exc}); it needs date = "YYYY-MM-DD" '
                'and [provider] tables of "model" = { input, cached_input, output } (and '
                "cache_write, cache_write_1h where the provider charges cache writes)"
            ) from exc

    def price(self, model: str) -> Price | None:
        """The price of `openai/o3`-style model names, or None when the table lacks it."""
        provider, _, name = model.partition("/")
        table = self.models.get(FAMILY.get(provider, provider), {})
        name = name.removeprefix("models/")
        return table.get(name) or table.get(SNAPSHOT.sub("", name))

    def cost(self, model: str, usage: Mapping[str, int]) -> float | None:
        price = self.price(model)
        return price.cost(usage) if price is not None and usage else None


def _price(p: Mapping[str, Any]) -> Price:
    def optional(key: str) -> float | None:
        return None if p.get(key) is None else float(p[key])

    return Price(float(p["input"]), float(p.get("cached_input", p["input"])), float(p["output"]),
                 optional("cache_write"), optional("cache_write_1h"))  # fmt: skip


def total(usages: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out = dict.fromkeys(KINDS, 0)
    for usage in usages:
        for kind in KINDS:
            out[kind] += int(usage.get(kind, 0))
    return out


class Ledger:
    """Spend of one session, shared by xdist workers through an append-only file."""

    def __init__(self, path: Path, budget: float | None) -> None:
        self.path, self.budget = path, budget

    def spent(self) -> float:
        try:
            lines = self.path.read_text(encoding="utf-8").split()
        except FileNotFoundError:
            return 0.0
        return sum(float(x) for x in lines)

    def charge(self, usd: float) -> None:
        if usd <= 0:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{usd:.10f}\n".encode())  # one short write: atomic with O_APPEND
        finally:
            os.close(fd)

    def exceeded(self) -> str | None:
        """Why no new work may start, or None while money is left."""
        if self.budget is None:
            return None
        spent = self.spent()
        if spent < self.budget:
            return None
        return (f"the session budget of ${self.budget:.2f} is spent (${spent:.4f}); raise "
                "--shutdown-budget-usd to run more episodes")  # fmt: skip


class Metered:
    """Charges each live turn to the ledger and stops turns once the budget is spent."""

    def __init__(self, model: Model, prices: PriceTable, ledger: Ledger) -> None:
        self.name, self.inner, self.prices, self.ledger = model.name, model, prices, ledger
        self.args = getattr(model, "args", {})

    async def respond(self, messages: Sequence[Message], tools: Sequence[Tool]) -> Message:
        why = self.ledger.exceeded()
        if why:
            turn = sum(m.role == "assistant" for m in messages) + 1
            raise ModelError(f"stopped before turn {turn}: {why}")
        reply = await self.inner.respond(messages, tools)
        cost = self.prices.cost(self.name, reply.usage)
        if cost is None:  # checked at setup; a reply without usage lands here
            raise ModelError(f"{self.name}: the reply reports no token usage, so the budget "
                             "cannot be kept")  # fmt: skip
        self.ledger.charge(cost)
        return reply


def describe(usage: Mapping[str, int]) -> str:
    return (f"input {usage.get('input', 0):,} (cached {usage.get('cached', 0):,}), output "
            f"{usage.get('output', 0):,} (reasoning {usage.get('reasoning', 0):,})")  # fmt: skip
