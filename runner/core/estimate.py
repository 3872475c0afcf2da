"""Dry runs: how many calls a run or sweep will make, its prompt tokens and worst-case cost."""

from __future__ import annotations

from dataclasses import dataclass

from runner.analysis.overrides import experiment_overrides
from runner.base.record import TokenUsage
from runner.core.costs import cost_usd
from runner.core.plan import JobPlan


@dataclass
class Estimate:
    """What one job will send, before anything is sent."""

    label: str
    calls: int
    prompt_tokens: int
    worst_case_cost_usd: float | None


def estimate_job(plan: JobPlan, label: str) -> Estimate:
    """Calls and prompt tokens of a plan, and its cost if every answer ran to its limit.

    Prompt tokens count the system message and every question with its earlier questions
    (answers are not known yet), for every sample (``repeat``). The worst case adds, for each
    turn, every earlier answer at full length (capped by the budget) and a full-length answer
    for each of ``sampling.n`` choices at the output price, and a call for every tool round.
    """
    run, counter = plan.run, plan.counter
    head = [{"role": "system", "content": run.system.message}] if run.system.message else []
    prompt_total = worst_prompt = worst_completion = 0
    for conv in plan.conversations:
        asked: list[dict[str, str]] = []
        for number, turn in enumerate(conv.turns, start=1):
            earlier = asked if run.max_history is None else asked[len(asked) - run.max_history :]
            if run.max_history == 0:
                earlier = []
            question = {"role": "user", "content": turn.question}
            tokens = counter.count_messages(head + earlier + [question])
            prompt_total += tokens
            answers = min(number - 1, len(earlier)) * plan.reserved
            worst_prompt += min(tokens + answers, plan.budget - plan.reserved)
            worst_completion += plan.reserved
            asked.append(question)
    # every sample asks it all again; a turn may take a call per tool round; each of n
    # choices may run to its limit
    calls = run.repeat * plan.steps
    prompt_total *= run.repeat
    worst_prompt *= calls
    worst_completion *= calls * plan.choices
    worst = TokenUsage(prompt_tokens=worst_prompt, completion_tokens=worst_completion)
    cost = cost_usd(worst, run.model.prices)
    return Estimate(label, plan.calls, prompt_total, cost)


def format_estimates(rows: list[Estimate]) -> str:
    """A table of the estimates with a total line, for the terminal."""
    footer = "total (dry run: nothing was sent)"
    width = min(max([len(r.label) for r in rows] + [len(footer)]), 70)
    lines = [f"{'job':<{width}} {'calls':>7} {'prompt tokens':>14} {'worst-case $':>13}"]
    for row in rows:
        cost = "unknown" if row.worst_case_cost_usd is None else f"{row.worst_case_cost_usd:.4f}"
        lines.append(
            f"{row.label[:width]:<{width}} {row.calls:>7} {row.prompt_tokens:>14,} {cost:>13}"
        )
    costs = [r.worst_case_cost_usd for r in rows]
    total = "unknown" if None in costs else f"{sum(c for c in costs if c is not None):.4f}"
    calls = sum(r.calls for r in rows)
    tokens = sum(r.prompt_tokens for r in rows)
    lines.append(f"{footer:<{width}} {calls:>7} {tokens:>14,} {total:>13}")
    return "\n".join(lines)


def job_label(overrides: list[str], fallback: str) -> str:
    """A job's name in the dry-run table: its overrides, less run control (``dry_run`` too)."""
    return " ".join(experiment_overrides(overrides)) or fallback
