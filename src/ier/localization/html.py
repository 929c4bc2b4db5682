"""The self-contained HTML report of ``ier.localize`` (timeline, key frames, embedded video) and
the index page that links several reports (``ier demo``)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from ier import viz
from ier.localization.results import drawing_threshold, sounding_evidence, strongest_candidates

logger = logging.getLogger(__name__)

STATE_COLORS = {
    "sounding-on-screen": "#2ca02c",
    "visible-silent": "#1f77b4",
    "heard-off-screen": "#ff7f0e",
    "absent": "#dddddd",
}


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1040px;padding:16px;color:#222}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 8px}.meta{color:#555}
video{width:100%;max-height:480px;background:#000}svg{width:100%;height:auto;display:block}
.seg{cursor:pointer}.lab{font-size:12px}.axis{font-size:10px;fill:#666}
.legend span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:12px;height:12px;
vertical-align:middle;margin-right:4px}.frames{display:grid;grid-template-columns:repeat(auto-fill,
minmax(220px,1fr));gap:10px}figure{margin:0;cursor:pointer}figure img{width:100%;display:block}
figcaption{font-size:12px;color:#444}table{border-collapse:collapse}td{padding:2px 10px 2px 0}
.quality{background:#fff4e5;border-left:4px solid #ff7f0e;padding:8px 12px;margin:10px 0}
.clip{display:grid;grid-template-columns:minmax(240px,2fr) 3fr;gap:18px;align-items:start;
border-top:1px solid #ddd;padding:14px 0}.clip img{width:100%;display:block}
.clip h2{margin:0 0 6px}.grid th,.grid td{border-bottom:1px solid #eee;padding:3px 10px 3px 0;
text-align:left}.grid th{font-weight:600}.ok{color:#2ca02c;font-weight:600}
.no{color:#d62728;font-weight:600}.num{text-align:right}
@media (max-width:700px){.clip{grid-template-columns:1fr}}
"""

_JS = """
(function(){
  var data = JSON.parse(document.getElementById('ier-data').textContent);
  var video = document.getElementById('video');
  var head = document.getElementById('playhead');
  function seek(t){ if(video){ video.currentTime = t; } }
  function x(t){ return data.x0 + (data.x1 - data.x0) * t / data.duration; }
  document.querySelectorAll('[data-t]').forEach(function(el){
    el.addEventListener('click', function(){ seek(parseFloat(el.getAttribute('data-t'))); });
  });
  if(video && head){
    video.addEventListener('timeupdate', function(){
      var px = x(video.currentTime); head.setAttribute('x1', px); head.setAttribute('x2', px);
    });
  }
  var box = document.getElementById('timeline').getBoundingClientRect();
  var px = Math.round(box.width) + 'x' + Math.round(box.height);
  document.body.setAttribute('data-timeline-px', px);
  document.body.setAttribute('data-ready', String(data.rows));
})();
"""


def _esc(text: Any) -> str:
    import html

    return html.escape(str(text), quote=True)


def _timeline_svg(document: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Server-side SVG: one row per class that is ever not absent, one segment per window."""
    duration = max(float(document["video"]["duration_seconds"]), 1e-6)
    hop = float(document["settings"]["hop_seconds"])
    classes = document["model"]["classes"]
    states = [[w["classes"][c]["state"] for w in document["windows"]] for c in range(len(classes))]
    active = [c for c, row in enumerate(states) if any(state != "absent" for state in row)]
    x0, x1, row_px = 150.0, 990.0, 22
    height = 30 + row_px * max(1, len(active))
    colors = viz.class_colors(len(classes))
    parts = [f'<svg id="timeline" viewBox="0 0 1000 {height}" role="img" '
             f'aria-label="class activity over time">']  # fmt: skip
    last = document["windows"][-1] if document["windows"] else None
    for row, c in enumerate(active):
        y = 6 + row * row_px
        r, g, b = colors[c]
        parts.append(
            f'<rect x="4" y="{y + 4}" width="10" height="10" fill="rgb({r},{g},{b})"/>'
            f'<text class="lab" x="18" y="{y + 14}">{_esc(classes[c])}</text>'
        )
        for w in document["windows"]:
            item = w["classes"][c]
            if item["state"] == "absent":
                continue
            t = w["time_seconds"]
            start = 0.0 if w["index"] == 0 else t - hop / 2  # frames use the nearest window
            end = duration if w is last else min(duration, t + hop / 2)
            left, right = x0 + (x1 - x0) * start / duration, x0 + (x1 - x0) * end / duration
            opacity = 0.3 + 0.7 * item["confidence"]
            parts.append(
                f'<rect class="seg" data-t="{t}" x="{left:.1f}" y="{y + 2}" '
                f'width="{max(right - left, 0.5):.1f}" height="{row_px - 6}" '
                f'fill="{STATE_COLORS[item["state"]]}" fill-opacity="{opacity:.2f}">'
                f"<title>{_esc(classes[c])} at {t:.2f} s: {item['state']} "
                f"({item['confidence']:.2f})</title></rect>"
            )
    if not active:
        parts.append(f'<text class="lab" x="{x0}" y="20">no class is active in any window</text>')
    axis_y = height - 8
    step = max(1, math.ceil(duration / 10))
    for tick in range(0, int(duration) + 1, step):
        px = x0 + (x1 - x0) * tick / duration
        parts.append(
            f'<text class="axis" x="{px:.1f}" y="{axis_y}" text-anchor="middle">{tick}s</text>'
        )
    parts.append(f'<line id="playhead" x1="{x0}" x2="{x0}" y1="0" y2="{height - 20}" '
                 'stroke="#d62728" stroke-width="1.5"/></svg>')  # fmt: skip
    return "".join(parts), {"duration": duration, "x0": x0, "x1": x1, "rows": len(active)}


def _key_frame_html(document: dict[str, Any], key_frames: list[tuple[int, np.ndarray]]) -> str:
    import base64

    figures = []
    for index, image in key_frames:
        window = document["windows"][index]
        active = [f"{c['name']}: {c['state']} {c['confidence']:.2f}"
                  for c in window["classes"] if c["state"] != "absent"]  # fmt: skip
        data = base64.b64encode(viz.png_bytes(image)).decode("ascii")
        if not active and window["classes"]:
            best = max(window["classes"], key=sounding_evidence)
            threshold = document["settings"]["score_threshold"]
            active = [f"nothing active (closest: {best['name']} {sounding_evidence(best):.2f}, "
                      f"threshold {threshold:.2f})"]  # fmt: skip
        caption = f"{window['time_seconds']:.2f} s — " + _esc("; ".join(active))
        figures.append(
            f'<figure data-t="{window["time_seconds"]}"><img alt="overlay at '
            f'{window["time_seconds"]:.2f} s" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    return '<div class="frames">' + "".join(figures) + "</div>" if figures else "<p>none</p>"


def _candidates_html(document: dict[str, Any], k: int = 3) -> str:
    """The ``k`` strongest candidates (``strongest_candidates``), and what to do when nothing is
    drawn."""
    rows = strongest_candidates(document, k)
    if not rows:
        return "<p>no windows</p>"
    threshold = rows[0]["threshold"]
    body = "".join(
        f"<tr><td>{_esc(r['name'])}</td><td class=num>{r['evidence']:.2f}</td>"
        f"<td class=num>{r['time_seconds']:.2f} s</td>"
        f"<td class=num>{r['windows_sounding']}</td></tr>"
        for r in rows
    )
    head = ("<tr><th>class</th><th class=num>strongest evidence</th><th class=num>at</th>"
            "<th class=num>windows drawn</th></tr>")  # fmt: skip
    table = f"<table class=grid>{head}{body}</table>"
    source = document["settings"].get("threshold_source") or "given"
    note = (f"<p>A class is drawn as sounding where its evidence reaches the threshold "
            f"{threshold:.3f} ({_esc(source)}).")  # fmt: skip
    if not any(r["windows_sounding"] for r in rows):
        note += (f" Nothing reached it. <code>ier localize --threshold "
                 f"{drawing_threshold(rows[0]['evidence']):.2f}</code> would draw "
                 f"{_esc(rows[0]['name'])}; a lower threshold also marks more clips with no "
                 "sound (see the model card).")  # fmt: skip
    return table + note + "</p>"


def render_report(
    document: dict[str, Any], key_frames: list[tuple[int, np.ndarray]], *, video: str | None
) -> str:
    """A self-contained HTML page: embedded video (relative link), timeline, key frames.

    Args:
        document: The ``localization.json`` document.
        key_frames: (window index, uint8 (H, W, 3) overlay image) pairs, shown as inline PNGs.
        video: Relative path of the overlay video, or None to leave it out.
    """
    svg, data = _timeline_svg(document)
    info, settings = document["video"], document["settings"]
    legend = "".join(f'<span><i class="sw" style="background:{color}"></i>{state}</span>'
                     for state, color in STATE_COLORS.items() if state != "absent")  # fmt: skip
    rows = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in settings.items())
    player = "<p>(no overlay video)</p>"
    if video:
        poster = ""
        if key_frames:  # a still for browsers (and headless screenshots) that show no frame
            import base64

            _, still = key_frames[len(key_frames) // 2]
            encoded = base64.b64encode(viz.png_bytes(still)).decode("ascii")
            poster = f' poster="data:image/png;base64,{encoded}"'
        player = (f'<video id="video" controls preload="metadata"{poster} '
                  f'src="{_esc(video)}"></video>')  # fmt: skip
    title = Path(info["path"]).name
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ier localization: {_esc(title)}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1>Localization: {_esc(title)}</h1>
<p class="meta">model <b>{_esc(document["model"]["name"])}</b> · {info["duration_seconds"]:.2f} s,
{info["width"]}×{info["height"]} at {info["fps"]:.2f} fps · {len(document["windows"])} windows ·
ier {_esc(document["ier_version"])}</p>
{player}
<h2>Timeline</h2>{svg}<p class="legend">{legend} (opacity = confidence; click to seek)</p>
<h2>Strongest candidates</h2>{_candidates_html(document)}
<h2>Key frames</h2>{_key_frame_html(document, key_frames)}
<h2>Settings</h2><table>{rows}</table>
<script type="application/json" id="ier-data">{json.dumps(data)}</script>
<script>{_JS}</script>
</body></html>
"""


_STATE_SHORT = {"sounding-on-screen": "sounding", "visible-silent": "silent",
                "heard-off-screen": "off-screen", "absent": "absent"}  # fmt: skip


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def _clip_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>No class is in the scene or found in any window.</p>"
    head = ("<tr><th>class</th><th>truth</th><th>found most often</th>"
            "<th class=num>windows in the true state</th><th class=num>mean score</th>"
            "<th>agrees</th></tr>")  # fmt: skip
    body = "".join(
        f"<tr><td>{_esc(r['class'])}</td><td>{_STATE_SHORT[r['truth']]}</td>"
        f"<td>{_STATE_SHORT[r['found']]} ({r['found_windows']}/{r['windows']})</td>"
        f"<td class=num>{r['truth_windows']}/{r['windows']}</td>"
        f"<td class=num>{r['mean_score']:.2f}</td>"
        f"<td class={'ok' if r['agrees'] else 'no'}>{'yes' if r['agrees'] else 'no'}</td></tr>"
        for r in rows
    )
    return f'<table class="grid">{head}{body}</table>'


def render_index(
    entries: list[dict[str, Any]],
    *,
    title: str = "ier demo",
    model: dict[str, str] | None = None,
) -> str:
    """An HTML index of several reports: the model's measured quality, a summary table of the
    clips' scores, and per clip its thumbnail and a truth-versus-found table.

    Args:
        entries: Dicts with "name", "report" (relative link), "summary" (text), and optional
            "thumbnail" (uint8 (H, W, 3) image), "truth" and "found" (text), "table" (rows of
            ``ier.commands.demo.truth_table``) and "scores" (``clip_scores``).
        title: Page title.
        model: Optional "name", "quality" (one line) and "card" (a link).
    """
    import base64

    quality = ""
    if model:
        card = model.get("card", "")
        quality = (f'<p class="quality">Model <b>{_esc(model.get("name", ""))}</b>: '
                   f'{_esc(model.get("quality", ""))}. See its card: '
                   f'<a href="{_esc(card)}">{_esc(card)}</a>.</p>')  # fmt: skip
    summary_rows, sections = [], []
    for entry in entries:
        scores = entry.get("scores") or {}
        link = f'<a href="{_esc(entry["report"])}">{_esc(entry["name"])}</a>'
        if scores:
            summary_rows.append(
                f"<tr><td>{link}</td><td class=num>{entry.get('windows', '–')}</td>"
                f"<td class=num>{scores['agreeing_classes']}/{scores['truth_classes']}</td>"
                f"<td class=num>{_percent(scores['window_agreement'])}</td>"
                f"<td class=num>{scores['extra_classes']}</td></tr>"
            )
        thumb = ""
        if entry.get("thumbnail") is not None:
            data = base64.b64encode(viz.png_bytes(entry["thumbnail"])).decode("ascii")
            thumb = (f'<a href="{_esc(entry["report"])}"><img alt="overlay of '
                     f'{_esc(entry["name"])}" src="data:image/png;base64,{data}"></a>')  # fmt: skip
        details = (f"<p>{_esc(entry['truth'])}<br>{_esc(entry['found'])}</p>"
                   if entry.get("truth") else f"<p>{_esc(entry['summary'])}</p>")  # fmt: skip
        table = _clip_table(entry["table"]) if entry.get("table") is not None else ""
        sections.append(
            f'<section class="clip"><div>{thumb}</div><div><h2>{link}</h2>{details}{table}'
            f'<p><a href="{_esc(entry["report"])}">full report: video, timeline, key frames'
            "</a></p></div></section>"
        )
    summary = ""
    if summary_rows:
        summary = (
            '<h2>Scores per clip</h2><table class="grid"><tr><th>clip</th>'
            "<th class=num>windows</th><th class=num>true classes found in their state</th>"
            "<th class=num>(class, window) pairs in the true state</th>"
            "<th class=num>classes found that are not in the scene</th></tr>"
            + "".join(summary_rows) + "</table>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style></head>
<body><h1>{_esc(title)}</h1>{quality}<p class="meta">One report per clip: overlay video, timeline
and key frames. "Found most often" is the state a class is in for the most windows; a class
agrees when that is its true state.</p>{summary}{"".join(sections)}</body></html>
"""
