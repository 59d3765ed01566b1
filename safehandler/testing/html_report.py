"""A soak report as one self-contained HTML page: the counters charted per invocation.

The charts are inline SVG drawn here and styled by the page's own CSS (light and dark): no
script, font or stylesheet is fetched, so the file can be attached to a ticket as it is.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html import escape

from .. import __version__
from .._records import Finding, InvocationStats, plural
from .._redact import redact_finding, redact_text
from ..report import advice
from ._limits import LAMBDA_FD_LIMIT
from ._report import SoakReport

__all__ = ["render_html"]

MAX_POINTS = 2000  # per chart; a longer series keeps each bucket's minimum and maximum
_MIB = 2**20

Point = tuple[int, float]


@dataclass(frozen=True, slots=True)
class _Rule:
    """A horizontal reference line: a limit or the unhealthy threshold below it."""

    value: float
    label: str
    kind: str  # "limit" or "threshold": its CSS class


@dataclass(slots=True)
class _Chart:
    key: str  # "fds", "threads", "db", "rss": the element id and series colour
    title: str
    name: str  # of the series, in the legend
    runs: list[list[Point]]  # unbroken stretches of recorded values
    unit: str = ""
    integer: bool = True
    rules: list[_Rule] = field(default_factory=list)
    marks: list[tuple[int, str]] = field(default_factory=list)  # vertical: (invocation, label)
    found: list[Finding] = field(default_factory=list)  # marked where they were reported


@dataclass(frozen=True, slots=True)
class _Frame:
    """Maps invocation numbers and values to SVG coordinates."""

    width: int
    height: int
    x_max: float
    y_max: float
    left: int = 52
    right: int = 14
    top: int = 16
    bottom: int = 26

    def x(self, invocation: float) -> float:
        return self.left + (self.width - self.left - self.right) * invocation / self.x_max

    def y(self, value: float) -> float:
        return self.top + (self.height - self.top - self.bottom) * (1 - value / self.y_max)


def render_html(
    report: SoakReport,
    *,
    fd_limit: int | None = LAMBDA_FD_LIMIT,
    fd_threshold: float | None = 0.5,
    memory_limit_bytes: int | None = None,
    memory_threshold: float | None = 0.8,
    title: str | None = None,
) -> str:
    """The report as one HTML document: a summary, four charts and the findings table.

    ``fd_limit`` and ``memory_limit_bytes`` draw the limit lines, and the thresholds (fractions
    of them) the line at which a handler is reported unhealthy; ``None`` leaves a line out.
    """
    report = _redacted(report)
    stats = report.stats
    fds = _Chart("fds", "Open file descriptors", "open fds", _runs(stats, lambda row: row.fds))
    if fd_limit:
        name = "Lambda RLIMIT_NOFILE" if fd_limit == LAMBDA_FD_LIMIT else "RLIMIT_NOFILE"
        fds.rules.append(_Rule(fd_limit, f"{name} {fd_limit:,}", "limit"))
        if fd_threshold:
            value = fd_limit * fd_threshold
            label = f"unhealthy at {fd_threshold:.0%} ({_number(value)})"
            fds.rules.append(_Rule(value, label, "threshold"))
    if report.fd_exhausted_at is not None:
        fds.marks.append((report.fd_exhausted_at, f"EMFILE from {report.fd_exhausted_at:,}"))
    rss = _Chart("rss", "RSS", "RSS", _runs(stats, lambda row: row.rss, _MIB), " MiB", False)
    if memory_limit_bytes:
        limit = memory_limit_bytes / _MIB
        rss.rules.append(_Rule(limit, f"memory limit {_number(limit)} MiB", "limit"))
        if memory_threshold:
            value = limit * memory_threshold
            label = f"unhealthy at {memory_threshold:.0%} ({_number(value, 1)} MiB)"
            rss.rules.append(_Rule(value, label, "threshold"))
    threads = _Chart("threads", "Threads", "threads", _runs(stats, lambda row: row.threads))
    db = _Chart(
        "db", "DB connections left open", "DB connections", _runs(stats, lambda row: row.db)
    )
    # each finding is marked on the chart of what leaked; globals have no chart
    by_kind = {"fd": fds, "socket": fds, "thread": threads, "db_connection": db, "memory": rss}
    for finding in report.findings:
        if finding.kind in by_kind:
            by_kind[finding.kind].found.append(finding)
    x_max = max([report.invocations, *(row.invocation for row in stats)]) or 1
    # raised (the guard saw it) or returned an error response (the soak saw it)
    failing = {n for first, last in report.failures.runs for n in range(first, last + 1)}
    failed = sorted(failing | {row.invocation for row in stats if row.failed})
    figures = "\n".join(
        _figure(chart, x_max, failed, wide=chart is fds) for chart in (fds, threads, db, rss)
    )
    heading = escape(redact_text(title or report.handler))
    handler = "" if title is None else f"<code>{escape(report.handler)}</code>"
    return _PAGE.format(
        title=heading,
        style=_STYLE,
        summary=_summary(report, heading, handler),
        figures=figures,
        findings=_findings(report.findings) + _notes(report.notes),
        version=escape(__version__),
    )


# -- data -----------------------------------------------------------------------------


def _redacted(report: SoakReport) -> SoakReport:
    """The report as the page may show it: redacted before escaping, which would hide the
    quotes and ampersands that mark a secret."""
    return dataclasses.replace(
        report,
        handler=redact_text(report.handler),
        findings=[redact_finding(finding) for finding in report.findings],
        notes=[redact_text(note) for note in report.notes],
        error_types=Counter({redact_text(k): n for k, n in report.error_types.items()}),
    )


def _runs(
    stats: Iterable[InvocationStats],
    column: Callable[[InvocationStats], int | None],
    scale: float = 1,
) -> list[list[Point]]:
    """The recorded values as unbroken runs: a gap (a probe switched off) is not bridged."""
    runs: list[list[Point]] = [[]]
    for row in stats:
        value = column(row)
        if value is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((row.invocation, value / scale))
    return [run for run in runs if run]


def _downsample(run: list[Point], budget: int) -> list[Point]:
    """At most about ``budget`` points: each bucket's minimum and maximum, so spikes stay."""
    if len(run) <= budget:
        return run
    buckets = max(1, budget // 2)
    size = len(run) / buckets
    out: list[Point] = []
    for bucket in range(buckets):
        chunk = run[round(bucket * size) : round((bucket + 1) * size)]
        if chunk:
            low = min(chunk, key=lambda point: point[1])
            high = max(chunk, key=lambda point: point[1])
            out.extend(sorted({low, high}))
    return out


def _ticks(top: float, count: int, *, integer: bool) -> list[float]:
    """Round steps (1, 2, 2.5 or 5 times a power of ten) from 0 to at least ``top``."""
    raw = max(top, 1e-9) / count
    power = 10 ** math.floor(math.log10(raw))
    steps = [m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw]
    if integer:
        steps = [max(1.0, step) for step in steps if max(1.0, step) % 1 == 0]
    step = steps[0]
    return [n * step for n in range(math.ceil(top / step - 1e-9) + 1)]


def _number(value: float, digits: int = 3) -> str:
    """``1,024``, ``409.6``, ``0.25``: grouped, without trailing zeros."""
    text = f"{value:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# -- drawing --------------------------------------------------------------------------


def _figure(chart: _Chart, x_max: float, failed: list[int], *, wide: bool) -> str:
    css = "chart wide" if wide else "chart"
    head = f'<section class="{css}" id="chart-{chart.key}"><h2>{escape(chart.title)}</h2>'
    if not chart.runs:
        return f'{head}<p class="caption">not recorded in this soak</p></section>'
    values = [value for run in chart.runs for _, value in run]
    digits = 0 if chart.integer else 1
    first, last, peak = (_number(value, digits) for value in (values[0], values[-1], max(values)))
    caption = f"{first} &rarr; {last}{chart.unit}, peak {peak}{chart.unit}"
    legend = [f'<span class="key series">{escape(chart.name)}</span>']
    if failed:
        legend.append('<span class="key raised">invocation failed</span>')
    if chart.found:
        legend.append('<span class="key found">finding reported</span>')
    size = (1060, 300) if wide else (340, 200)
    return (
        f'{head}<p class="caption">{caption}</p>{_svg(chart, size, x_max, failed)}'
        f'<p class="legend">{"".join(legend)}</p></section>'
    )


def _svg(chart: _Chart, size: tuple[int, int], x_max: float, failed: list[int]) -> str:
    width, height = size
    values = [value for run in chart.runs for _, value in run]
    top = max([1, *values, *(rule.value for rule in chart.rules)]) * 1.05
    y_ticks = _ticks(top, 5, integer=chart.integer)
    frame = _Frame(width, height, x_max, y_ticks[-1] or 1)
    x_ticks = [n for n in _ticks(x_max, 10 if width > 600 else 4, integer=True) if n <= x_max]
    left, right, bottom = frame.left, width - frame.right, frame.y(0)
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(chart.title)} per invocation">'
    ]
    for tick in y_ticks:
        y = frame.y(tick)
        parts.append(
            f'<line class="grid" x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(tick)}</text>'
        )
    parts += [
        f'<text x="{frame.x(tick):.1f}" y="{height - 8}" text-anchor="middle">'
        f"{_number(tick)}</text>"
        for tick in x_ticks
    ]
    parts.append(f'<line class="axis" x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}"/>')
    for invocation, label in chart.marks:
        parts.append(_mark(frame, invocation, label, "mark", frame.top + 12))
    for rule in chart.rules:
        y = frame.y(rule.value)
        parts.append(
            f'<line class="rule {rule.kind}" x1="{left}" x2="{right}" '
            f'y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="rule {rule.kind}" x="{right - 4}" y="{y - 5:.1f}" '
            f'text-anchor="end">{escape(rule.label)}</text>'
        )
    for run in chart.runs:
        budget = max(2, MAX_POINTS * len(run) // len(values))
        points = " ".join(
            f"{frame.x(n):.1f},{frame.y(value):.1f}" for n, value in _downsample(run, budget)
        )
        parts.append(f'<polyline class="series" points="{points}"/>')
    if failed:
        # one tick per pixel column: thousands of failures draw as a band, not a megabyte
        columns = sorted({round(frame.x(n)) for n in failed})
        count = len(failed)
        parts.append(
            f'<path class="raised" d="{"".join(f"M{x} {bottom:.1f}v-7" for x in columns)}">'
            f"<title>{count:,} {plural('invocation', count)} failed (raised or returned an "
            "error), "
            f"first at {failed[0]:,}</title></path>"
        )
        if width > 600:
            label = f"failing from {failed[0]:,}" if count > 1 else f"failed at {failed[0]:,}"
            parts.append(_text(frame, failed[0], bottom - 12, label, "raised"))
    for finding in chart.found:
        reported = finding.invocation or finding.first_invocation
        x = frame.x(reported)
        parts.append(
            f'<path class="found" d="M{x - 5:.1f} {frame.top - 10}h10l-5 8z">'
            f"<title>{_shown(str(finding))}</title></path>"
        )
        if width > 600:
            label = f"{finding.kind} leak reported at {reported:,}"
            parts.append(_text(frame, reported, frame.top - 2, label, "found", gap=8))
    parts.append("</svg>")
    return "".join(parts)


def _mark(frame: _Frame, invocation: int, label: str, css: str, y: float) -> str:
    """A dotted vertical line at ``invocation``, labelled near its top."""
    x = frame.x(invocation)
    return (
        f'<line class="{css}" x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top}" y2="{frame.y(0)}"/>'
        + _text(frame, invocation, y, label, css)
    )


def _text(frame: _Frame, invocation: int, y: float, label: str, css: str, *, gap: int = 4) -> str:
    """A label beside ``invocation``, on whichever side has room."""
    x = frame.x(invocation)
    end = x > frame.width * 0.6
    return (
        f'<text class="{css}" x="{x + (-gap if end else gap):.1f}" y="{y:.1f}" '
        f'text-anchor="{"end" if end else "start"}">{escape(label)}</text>'
    )


# -- text -----------------------------------------------------------------------------


def _summary(report: SoakReport, heading: str, handler: str) -> str:
    if report.clean:
        verdict = '<span class="verdict clean">clean</span> nothing outlived its invocation'
    elif report.verdict == "failing":
        verdict = (
            f'<span class="verdict leak">FAILING</span> {report.failed:,} of '
            f"{report.invocations:,} invocations failed"
        )
    else:
        count = len(report.findings)
        verdict = f'<span class="verdict leak">LEAK</span> {count} {plural("finding", count)}'
    rate = report.invocations / report.seconds if report.seconds else 0.0
    raised = f"{report.errors:,}"
    if report.error_types:
        kinds = ", ".join(f"{n:,} {kind}" for kind, n in report.error_types.most_common())
        raised += f' <span class="muted">({escape(kinds)})</span>'
    facts = [("handler", handler)] if handler else []
    facts += [
        ("invocations", f"{report.invocations:,}"),
        ("time", f'{report.seconds:,.2f} s <span class="muted">({rate:,.0f}/s)</span>'),
        ("raised", raised),
    ]
    if report.fd_limit:
        where = "in a child process" if report.isolated else "in-process"
        facts.append(("RLIMIT_NOFILE", f'{report.fd_limit:,} <span class="muted">({where})</span>'))
    if report.fd_exhausted_at is not None:
        facts.append(("EMFILE", f"from invocation {report.fd_exhausted_at:,}"))
    if (first := report.failures.first) is not None:
        evolution = report.failures.evolution(report.invocations)
        facts.append(
            ("failing", escape(redact_text(f"from invocation {first.invocation:,} ({first})")))
        )
        facts.append(("failures", escape(evolution)))
    items = "".join(f"<div><dt>{name}</dt><dd>{value}</dd></div>" for name, value in facts)
    return (
        '<header><p class="eyebrow">safehandler soak report</p>'
        f'<h1>{heading}</h1><p class="summary">{verdict}</p><dl>{items}</dl></header>'
    )


def _findings(findings: list[Finding]) -> str:
    if not findings:
        return "<h2>Findings</h2><p>None: every resource an invocation opened was closed.</p>"
    rows = []
    for finding in findings:
        if finding.kind == "memory":
            count = f"{finding.count / 1024:,.1f} KiB/invocation"
        elif finding.kind == "global":  # one global, changed in `count` invocations
            count = f"1 {finding.noun or 'global'}{_items(finding.detail)}"
        else:
            count = f"{finding.count:,} {plural(finding.noun or finding.kind, finding.count)}"
        cells = [
            escape(finding.kind),
            escape(count),
            _site(finding),
            f"{finding.first_invocation:,}",
            f"{finding.invocation:,}" if finding.invocation else "",
            escape(finding.detail),
        ]
        if path := finding.extra.get("path"):
            cells[-1] += f'<br><span class="muted">{escape(str(path))}</span>'
        cells[-1] += f'<br><span class="advice">fix: {escape(advice(finding))}</span>'
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    names = ("kind", "count", "site", "first invocation", "reported at", "detail")
    head = "".join(f"<th>{name}</th>" for name in names)
    return (
        f"<h2>Findings</h2><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _notes(notes: list[str]) -> str:
    """What the verdict does not fail on: memory not judged yet, bounded growth."""
    if not notes:
        return ""
    items = "".join(f"<li>{escape(note)}</li>" for note in notes)
    return f"<h2>Notes</h2><ul>{items}</ul>"


def _items(detail: str) -> str:
    """ " (300 items)" from "app.CACHE grew: 1 -> 300 items since invocation 1"."""
    _, grew, sizes = detail.partition(" grew: ")
    if not grew:
        return ""
    new = sizes.partition(" -> ")[2].partition(" items")[0]
    return f" ({int(new.replace(',', '')):,} items)" if new.replace(",", "").isdigit() else ""


def _site(finding: Finding) -> str:
    site = finding.site
    if site is None:
        return '<span class="muted">unknown</span>'
    text = f"<code>{_shown(site.location)}</code> in {_shown(site.function)}"
    if site.via:
        text += f'<br><span class="muted">via {_shown(site.via)}</span>'
    if site.called_from:
        text += f'<br><span class="muted">called from {_shown(site.called_from)}</span>'
    return text


def _shown(text: str) -> str:
    return escape(redact_text(text))


_STYLE = """
:root { color-scheme: light dark;
  --bg: #ffffff; --fg: #1f2328; --muted: #59636e; --grid: #e4e7eb; --axis: #8c959f;
  --panel: #f6f8fa; --border: #d1d9e0; --limit: #cf222e; --threshold: #bc4c00;
  --raised: #d1242f; --found: #8250df; --clean: #1a7f37; --leak: #cf222e;
  --fds: #0969da; --threads: #1a7f37; --db: #8250df; --rss: #9a6700; }
@media (prefers-color-scheme: dark) { :root {
  --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --grid: #262c36; --axis: #656c76;
  --panel: #151b23; --border: #3d444d; --limit: #ff7b72; --threshold: #f0883e;
  --raised: #ff7b72; --found: #bc8cff; --clean: #3fb950; --leak: #ff7b72;
  --fds: #4493f8; --threads: #3fb950; --db: #bc8cff; --rss: #d29922; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1140px; margin: 0 auto; padding: 28px 24px 40px; }
h1 { font-size: 22px; margin: 0 0 6px; word-break: break-all; }
h2 { font-size: 15px; margin: 0; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.muted, .caption, .advice, footer { color: var(--muted); }
.eyebrow { margin: 0 0 2px; font-size: 12px; letter-spacing: .06em; text-transform: uppercase;
  color: var(--muted); }
.summary { margin: 8px 0 16px; font-size: 15px; }
.verdict { display: inline-block; margin-right: 6px; padding: 2px 12px; border-radius: 999px;
  font-weight: 700; color: var(--bg); }
.verdict.clean { background: var(--clean); }
.verdict.leak { background: var(--leak); }
dl { display: flex; flex-wrap: wrap; gap: 8px 28px; margin: 0 0 22px; }
dt { font-size: 12px; color: var(--muted); }
dd { margin: 0; font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 16px; }
.chart { background: var(--panel); border: 1px solid var(--border); border-radius: 8px;
  padding: 12px 14px 8px; }
.chart.wide { grid-column: 1 / -1; }
@media (max-width: 820px) { .charts { grid-template-columns: minmax(0, 1fr); } }
.caption { margin: 0 0 4px; font-size: 13px; }
svg { display: block; width: 100%; height: auto; overflow: visible; }
svg text { font-size: 11px; fill: var(--muted); font-variant-numeric: tabular-nums; }
.grid { stroke: var(--grid); stroke-width: 1; }
.axis { stroke: var(--axis); stroke-width: 1; }
.series { fill: none; stroke-width: 2; stroke-linejoin: round; }
#chart-fds { --series: var(--fds); } #chart-threads { --series: var(--threads); }
#chart-db { --series: var(--db); } #chart-rss { --series: var(--rss); }
.series { stroke: var(--series); }
line.rule { stroke-width: 1.5; stroke-dasharray: 6 4; }
line.limit { stroke: var(--limit); } line.threshold { stroke: var(--threshold); }
text.rule { font-weight: 600; }
text.limit { fill: var(--limit); } text.threshold { fill: var(--threshold); }
line.mark { stroke: var(--muted); stroke-dasharray: 2 3; }
text.mark { fill: var(--fg); }
text.raised { fill: var(--raised); font-weight: 600; }
text.found { fill: var(--found); font-weight: 600; }
path.raised { stroke: var(--raised); stroke-width: 1; }
path.found { fill: var(--found); }
.legend { margin: 4px 0 0; font-size: 12px; color: var(--muted); }
.key { margin-right: 14px; white-space: nowrap; }
.key::before { content: ""; display: inline-block; width: 16px; margin-right: 5px;
  vertical-align: middle; border-top: 2px solid; }
.key.series::before { border-color: var(--series); }
.key.raised::before { width: 0; height: 9px; border-top: 0;
  border-left: 1.5px solid var(--raised); }
.key.found::before { width: 0; border: 5px solid transparent; border-top: 7px solid var(--found);
  border-bottom: 0; }
section.findings { margin-top: 26px; }
section.findings h2 { margin-bottom: 8px; }
table { width: 100%; border-collapse: collapse; font-size: 13px; }
th, td { text-align: left; vertical-align: top; padding: 7px 10px;
  border-bottom: 1px solid var(--border); overflow-wrap: break-word; }
th { font-size: 12px; color: var(--muted); font-weight: 600; }
td:nth-child(-n+2), td:nth-child(4), td:nth-child(5) { white-space: nowrap; }
td:nth-child(3) code { white-space: nowrap; }
footer { margin-top: 28px; font-size: 12px; }
"""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<main>
{summary}
<div class="charts">
{figures}
</div>
<section class="findings">{findings}</section>
<footer>safehandler {version}</footer>
</main>
</body>
</html>
"""
