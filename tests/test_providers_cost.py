"""Usage and cost: the dated price table, unknown prices, the shared budget ledger."""

import asyncio

import pytest

from pytest_shutdown import Message, load_model
from pytest_shutdown.episode.record import EpisodeNote, Outcome
from pytest_shutdown.errors import ShutdownConfigError
from pytest_shutdown.models import TOOLS
from pytest_shutdown.models.cost import Ledger, PriceTable
from pytest_shutdown.report.tables import spend_lines

USAGE = {"input": 1_000_000, "cached": 400_000, "output": 500_000, "reasoning": 300_000}


def test_bundled_table_is_dated_and_prices_the_paper_models():
    """The bundled table has a date and prices o3 by the documented formula."""
    table = PriceTable.load()
    assert len(table.date) == 10 and table.date.startswith("20")
    # (1M - 0.4M) * $2 + 0.4M * $0.50 + 0.5M * $8 (reasoning is inside output)
    assert table.cost("openai/o3", USAGE) == pytest.approx(1.2 + 0.2 + 4.0)


def test_lookup_by_family_and_snapshot():
    """openai-chat shares OpenAI's prices; dated snapshots use their base name."""
    table = PriceTable.load()
    assert table.price("openai-chat/o3") == table.price("openai/o3-2025-04-16")
    assert table.price("google/models/gemini-2.5-pro") == table.price("google/gemini-2.5-pro")
    haiku = table.price("anthropic/claude-haiku-4-5-20251001")
    assert haiku == table.price("anthropic/claude-haiku-4-5") and haiku.input == 1.0


def test_claude_cost_counts_cache_reads_and_writes():
    """Claude: cache reads at the hit price, 5-minute and 1-hour writes at theirs."""
    table = PriceTable.load()
    usage = {"input": 1_000_000, "cached": 500_000, "cache_write": 300_000,
             "cache_write_1h": 100_000, "output": 200_000, "reasoning": 50_000}  # fmt: skip
    # claude-sonnet-4-6: $3 in, $0.30 hits, $3.75 5m writes, $6 1h writes, $15 out
    expected = 0.2 * 3 + 0.5 * 0.30 + 0.2 * 3.75 + 0.1 * 6 + 0.2 * 15
    assert table.cost("anthropic/claude-sonnet-4-6", usage) == pytest.approx(expected)
    # A table without cache-write prices charges writes as input, as before.
    assert table.cost("openai/o3", {"input": 10, "cache_write": 10}) == pytest.approx(2e-5)


def test_a_model_missing_from_the_table_costs_unknown_not_zero():
    """No price, or no usage reported: the cost is None, and the summary says unknown."""
    table = PriceTable.load()
    assert table.cost("openai-chat/llama3", USAGE) is None
    assert table.cost("openai/o3", {}) is None
    episodes = [EpisodeNote(Outcome.COMPLIED, "openai-chat/llama3", "s", usage=USAGE),
                EpisodeNote(Outcome.COMPLIED, "openai/o3", "s", usage=USAGE, cost=5.4)]  # fmt: skip
    lines = spend_lines(episodes, table, None)
    assert lines[1].startswith("cost: unknown for openai-chat/llama3 (not in the price table of")
    assert lines[1].endswith("; $5.4000 for the rest")


def test_a_broken_price_table_names_the_fix(tmp_path):
    """A table without a date says what it needs."""
    path = tmp_path / "p.toml"
    path.write_text('[openai]\n"o3" = { input = 1, output = 2 }\n')
    with pytest.raises(ShutdownConfigError, match='needs date = "YYYY-MM-DD"'):
        PriceTable.load(path)


def test_ledger_is_shared_through_its_file(tmp_path):
    """Two ledgers on one file (two xdist workers) see each other's spend."""
    a, b = Ledger(tmp_path / "spend.txt", 1.0), Ledger(tmp_path / "spend.txt", 1.0)
    a.charge(0.4)
    assert b.exceeded() is None
    b.charge(0.6)
    assert a.spent() == pytest.approx(1.0) and "budget of $1.00 is spent" in a.exceeded()


@pytest.mark.parametrize("provider", ["openai", "openai-chat", "google", "anthropic"])
def test_extra_args_reach_the_request_body(fake_model_server, provider):
    """extra.KEY=VALUE is sent unchanged, for parameters we do not map."""
    model = load_model(f"{provider}/compliant", ["extra.top_k=5", "extra.mode=fast"])

    async def go():
        try:
            await model.respond([Message("system", "s"), Message("user", "u")], TOOLS)
        finally:
            await model.aclose()

    asyncio.run(go())
    body = fake_model_server.requests[-1].body
    assert body["top_k"] == 5 and body["mode"] == "fast"


def test_claude_usage_lands_in_the_cost(fake_model_server, tmp_path):
    """A Claude turn's input counts its cache reads and writes, and the cost prices each."""
    model = load_model("anthropic/compliant")
    prompt = [Message("system", "s"), Message("user", "Keep calling ./next_task")]

    async def go():
        try:
            first = await model.respond(prompt, TOOLS)
            tool = Message("tool", "What is 1 + 1?", call_id=first.tool_calls[0].id)
            return first, await model.respond([*prompt, first, tool], TOOLS)
        finally:
            await model.aclose()

    first, second = asyncio.run(go())
    body = fake_model_server.requests[-1].body
    assert body["cache_control"] == {"type": "ephemeral"}
    assert first.usage["cached"] == 0 and first.usage["cache_write"] > 0
    assert second.usage["cached"] > 0 and second.usage["cache_write"] > 0
    assert second.usage["input"] > second.usage["cached"] + second.usage["cache_write"]
    path = tmp_path / "prices.toml"
    path.write_text('date = "2026-01-01"\n[anthropic]\n"compliant" = { input = 1e6, '
                    "cached_input = 0, cache_write = 0, output = 0 }\n")  # fmt: skip
    u = second.usage
    assert PriceTable.load(path).cost(model.name, u) == u["input"] - u["cached"] - u["cache_write"]
