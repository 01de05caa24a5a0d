"""The divergence report of a shadow run: in the terminal, as JSON, as a self-contained page.

The HTML page has no external resources (styles inline, no scripts), so it can be attached to
a ticket or opened from disk. The summary figures carry stable element ids (``events``,
``different``, ``divergence-rate``, ``cost-delta``...) for tools that read the page.
"""

from __future__ import annotations

import html
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from agentstream.replay.runner import RecordedReport, ShadowReport


def report_json(report: ShadowReport) -> dict[str, Any]:
    """The report as JSON data: run, summary and one entry per event."""
    return {
        "run_id": report.run_id,
        "agent": report.agent,
        "candidate": report.candidate,
        "summary": report.summary,
        "events": report.entries,
    }


def print_shadow(report: ShadowReport, console: Console, *, limit: int = 50) -> None:
    """Per-event divergences (changed events first) and the summary, as terminal tables."""
    s = report.summary
    table = Table(
        title=f"shadow run {report.run_id}: {report.candidate} vs {report.agent}",
        title_justify="left",
    )
    for col in ("event", "key", "decision", "tool calls", "effects", "tokens Δ", "cost Δ"):
        table.add_column(col)
    ordered = sorted(report.entries, key=lambda e: e["decision"] == "same")
    for e in ordered[:limit]:
        table.add_row(
            e["event_id"],
            str(e["key"]),
            "[red]different[/red]" if e["decision"] == "different" else "same",
            "same" if e["tool_calls_same"] else "[yellow]different[/yellow]",
            _effects_cell(e),
            f"{e['tokens_delta']:+d}",
            f"${e['cost_delta_usd']:+.6f}",
        )
    if len(ordered) > limit:
        table.caption = f"{len(ordered) - limit} more event(s) in the JSON and HTML reports"
    console.print(table)
    console.print(
        f"[bold]{s['different']} of {s['events']} decisions changed[/bold] "
        f"(divergence rate {s['divergence_rate']:.1%}); {s['failed']} failed; "
        f"tool calls changed on {s['tool_calls_different']}; effects answered "
        f"{s['effects_answered']}, suppressed {s['effects_suppressed']}; "
        f"{s['model_calls']} model call(s) made; tokens {s['live_tokens']} -> "
        f"{s['candidate_tokens']}; cost ${s['live_cost_usd']:.6f} -> "
        f"${s['candidate_cost_usd']:.6f} (Δ ${s['cost_delta_usd']:+.6f}, "
        f"{s['cost_delta_pct']:+.2f}%)"
    )


def _effects_cell(entry: dict[str, Any]) -> str:
    effects = entry["candidate"]["effects"]
    suppressed = sum(x["suppressed"] for x in effects)
    label = "same" if entry["effects_same"] else "[yellow]different[/yellow]"
    return f"{label} ({suppressed} suppressed)" if suppressed else label


def print_recorded(report: RecordedReport, console: Console, *, limit: int = 50) -> None:
    """Events that did not reproduce, and the totals."""
    bad = [r for r in report.results if r.status in ("different", "failed")]
    if bad:
        table = Table(title="events that did not reproduce", title_justify="left")
        for col in ("event", "key", "status", "detail"):
            table.add_column(col)
        for r in bad[:limit]:
            table.add_row(r.event_id, str(r.key), r.status, r.detail)
        console.print(table)
    rate = len(report.results) / report.seconds if report.seconds else 0.0
    console.print(
        f"recorded replay of {report.agent}: {report.count('identical')} identical, "
        f"{report.count('different')} different, {report.count('failed')} failed, "
        f"{report.count('skipped')} skipped; {report.model_calls} model call(s); "
        f"{len(report.results)} event(s) in {report.seconds:.2f}s ({rate:,.0f} events/s)"
    )


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1f2328}
h1{font-size:1.4rem;margin:0 0 .3rem} .sub{color:#57606a;margin-bottom:1.5rem}
.cards{display:flex;gap:1rem;flex-wrap:wrap;margin-bottom:1.5rem}
.card{border:1px solid #d0d7de;border-radius:8px;padding:.8rem 1.1rem;min-width:9rem}
.card .v{font-size:1.6rem;font-weight:600} .card .l{color:#57606a;font-size:.85rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border-bottom:1px solid #d0d7de;padding:.4rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa} tr.different{background:#fff5f5} .bad{color:#cf222e;font-weight:600}
code{font-size:.8rem;white-space:pre-wrap;word-break:break-all} details summary{cursor:pointer}
"""


def _card(ident: str, label: str, value: str) -> str:
    return (
        f'<div class="card"><div class="v" id="{ident}">{html.escape(value)}</div>'
        f'<div class="l">{html.escape(label)}</div></div>'
    )


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)
    return f"<code>{html.escape(text[:4000])}</code>"


def report_html(report: ShadowReport) -> str:
    """The report as one self-contained HTML page."""
    s = report.summary
    cards = "".join(
        [
            _card("events", "events replayed", str(s["events"])),
            _card("different", "decisions changed", str(s["different"])),
            _card("divergence-rate", "divergence rate", f"{s['divergence_rate']:.1%}"),
            _card("failed", "candidate failures", str(s["failed"])),
            _card("tool-calls-different", "tool calls changed", str(s["tool_calls_different"])),
            _card("effects-suppressed", "effects suppressed", str(s["effects_suppressed"])),
            _card("model-calls", "model calls made", str(s["model_calls"])),
            _card("cost-live", "live cost", f"${s['live_cost_usd']:.6f}"),
            _card("cost-candidate", "candidate cost", f"${s['candidate_cost_usd']:.6f}"),
            _card("cost-delta", "cost delta", f"${s['cost_delta_usd']:+.6f}"),
            _card("cost-delta-pct", "cost delta %", f"{s['cost_delta_pct']:+.2f}%"),
        ]
    )
    rows = []
    for e in sorted(report.entries, key=lambda e: e["decision"] == "same"):
        live, cand = e["live"], e["candidate"]
        changed = e["decision"] == "different"
        rows.append(
            f'<tr class="{e["decision"]}" data-event="{html.escape(e["event_id"])}">'
            f"<td>{html.escape(e['event_id'])}<br><small>{html.escape(str(e['key']))} "
            f"{html.escape(e['source'])}</small></td>"
            f'<td class="{"bad" if changed else ""}">{e["decision"]}</td>'
            f"<td>{html.escape(cand['status'])}</td>"
            f"<td>{'same' if e['tool_calls_same'] else '<span class=bad>different</span>'}"
            f"<details><summary>calls</summary>live {_code(live['tool_calls'])}<br>"
            f"candidate {_code(cand['tool_calls'])}</details></td>"
            f"<td>{'same' if e['effects_same'] else '<span class=bad>different</span>'}"
            f"<details><summary>effects</summary>live {_code(live['effects'])}<br>"
            f"candidate {_code(cand['effects'])}</details></td>"
            f"<td>{live['tokens']} → {cand['tokens']}</td>"
            f"<td>${live['cost_usd']:.6f} → ${cand['cost_usd']:.6f}</td>"
            f"<td><details><summary>outputs</summary>live {_code(live['outputs'])}<br>"
            f"candidate {_code(cand['outputs'] or cand['error'] or '')}</details></td></tr>"
        )
    title = f"Shadow run {report.run_id}"
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><div class=sub>candidate "
        f"<b>{html.escape(report.candidate)}</b> against recorded events of agent "
        f"<b>{html.escape(report.agent)}</b></div><div class=cards>{cards}</div>"
        "<table><thead><tr><th>event</th><th>decision</th><th>candidate</th>"
        "<th>tool calls</th><th>effects</th><th>tokens</th><th>cost</th><th>outputs</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></body></html>\n"
    )
