"""A static HTML report of a finished sweep, fit to send to a collaborator.

One page (``index.html``) with a table of contents, how the results were made (date, code revision,
package versions, the sweep config as YAML), results tables with their statistics (mean ± SEM across
subjects, permutation p and FDR q per subject) with layers in depth order and ROIs in dataset order,
every standard figure with a caption saying what it shows, and an interactive surface view. Nothing
on the page is fetched from the network.
"""

from __future__ import annotations

import datetime as _dt
import html
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from brain_workbench.analysis.contract import ReportSection
from brain_workbench.analysis.summaries import best_layers
from brain_workbench.figures.layers import retrieval_columns
from brain_workbench.figures.sweep import figure_captions, write_figures
from brain_workbench.store import Store, provenance
from brain_workbench.store.paths import manifest_path
from brain_workbench.sweep import results_table
from brain_workbench.sweep.tables import analyses_for, code_revision, shown_encoder

STYLE = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1em 2em;color:#222;line-height:1.4}
nav{background:#f5f5f5;padding:.5em 1.5em;border-radius:6px} nav ul{margin:.3em 0}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:90%}
td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
th{background:#fafafa} td.l,th.l{text-align:left} pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:85%}
figure{margin:1.5em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{font-size:92%;color:#444;max-width:60em}
iframe{width:100%;height:620px;border:1px solid #ddd} .note{color:#555;font-size:90%}
"""

SCORE_NAMES = {"mean_r": "mean Pearson r", "mean_r_normalized": "mean r / noise ceiling", "value": "value"}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _ordered(frame: Any) -> Any:
    """Rows in encoder (config) order, then layer depth, then ROI in the order the dataset gives them."""
    frame = frame.copy()
    for column in ("encoder", "roi", "subject"):
        if column in frame.columns:
            order = list(dict.fromkeys(frame[column]))
            frame[f"_{column}"] = frame[column].map({v: i for i, v in enumerate(order)})
    keys = [k for k in ("_encoder", "depth", "layer", "_roi", "_subject") if k in frame.columns]
    return frame.sort_values(keys, kind="stable").drop(columns=[k for k in keys if k.startswith("_")])


def _fmt(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return html.escape(str(x))
    if v != v:
        return ""
    return f"{v:.2e}" if v != 0 and abs(v) < 1e-3 else f"{v:.3f}"


def _label(value: Any) -> str:
    """A label cell: floats (layer depths) with two decimals, as every table prints them, not 0.3333333333333333."""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _html_table(frame: Any, left: int) -> str:
    """A plain HTML table; the first ``left`` columns are labels (left-aligned)."""
    head = "".join(f"<th class='l'>{html.escape(str(c))}</th>" if i < left else f"<th>{html.escape(str(c))}</th>"
                   for i, c in enumerate(frame.columns))
    rows = []
    for values in frame.itertuples(index=False):
        cells = [f"<td class='l'>{html.escape(_label(v))}</td>" if i < left
                 else f"<td>{_fmt(v) if not isinstance(v, str) else html.escape(v)}</td>"
                 for i, v in enumerate(values)]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def summary_pivot(rows: Any, value: str) -> Any:
    """Mean ± SEM across subjects of ``value``: one row per encoder × layer (depth order), one column per
    ROI (dataset order)."""
    import pandas as pd

    rois = [r for r in dict.fromkeys(rows["roi"])]
    per = rows.groupby(["encoder", "layer", "depth", "roi"], sort=False)[value]
    stats = per.agg(mean="mean", sem="sem", n="count").reset_index()
    stats["text"] = [f"{m:.3f}" + (f" ± {s:.3f}" if n > 1 and s == s else "") if m == m else ""
                     for m, s, n in zip(stats["mean"], stats["sem"], stats["n"])]
    wide = stats.pivot(index=["encoder", "layer", "depth"], columns="roi", values="text").reset_index()
    wide = _ordered(wide.assign(roi=None)).drop(columns="roi")
    return pd.DataFrame(wide[["encoder", "layer", "depth", *[r for r in rois if r in wide.columns]]])


def retrieval_table(rows: Any) -> Any:
    """Decoding rows: each retrieval score per encoder × layer × ROI as mean ± SEM (chance)."""
    import pandas as pd

    out = []
    for (encoder, layer, _, roi), part in _ordered(rows).groupby(["encoder", "layer", "depth", "roi"], sort=False):
        row = {"encoder": encoder, "layer": layer, "roi": roi}
        for score in retrieval_columns(part):
            mean, sem = part[score].mean(), part[score].sem() if len(part) > 1 else float("nan")
            row[score] = f"{mean:.3f}" + (f" ± {sem:.3f}" if sem == sem else "") + f" ({part[f'chance_{score}'].mean():.3f})"
        out.append(row)
    return pd.DataFrame(out)


def score_table(rows: Any) -> Any:
    """Every numeric score of the rows (not ids, p/q values or counts) per encoder × layer × ROI, as mean ± SEM."""
    import pandas as pd

    from brain_workbench.sweep.tables import score_columns

    scores = [c for c in score_columns(rows) if not re.match(r"^(p|q|n)_", c)
              and pd.api.types.is_numeric_dtype(rows[c]) and rows[c].notna().any()]
    out = []
    for (encoder, layer, roi), part in _ordered(rows).groupby(["encoder", "layer", "roi"], sort=False):
        row = {"encoder": encoder, "layer": layer, "roi": roi}
        for score in scores:
            mean, sem = part[score].mean(), part[score].sem() if part[score].count() > 1 else float("nan")
            row[score] = f"{mean:.3f}" + (f" ± {sem:.3f}" if sem == sem else "")
        out.append(row)
    return pd.DataFrame(out)


STAT_COLUMNS = ("mean_r", "mean_r_normalized", "median_r", "value", "sem", "ci_low", "ci_high",
                "p_permutation", "q_fdr", "null_mean_r_95", "peak_time", "peak_mean_r")


def statistics_table(rows: Any) -> Any:
    """Per subject × encoder × layer × ROI: the scores and every statistic the results table carries."""
    extra = [c for c in rows.columns if re.match(r"^(p|q)_|(^|_)(sem|ci)(_|$)", c) and c not in STAT_COLUMNS]
    columns = [c for c in (*STAT_COLUMNS, *extra) if c in rows.columns and rows[c].notna().any()]
    several = "analysis" in rows.columns and rows["analysis"].nunique() > 1
    label = ["subject", "encoder", "layer", "depth", "roi"] + (["analysis"] if several else [])
    return _ordered(rows)[label + columns]


class ReportKit:
    """What an analysis builds its report sections with: the core's HTML tables and the default sections."""

    summary_pivot = staticmethod(summary_pivot)
    retrieval_table = staticmethod(retrieval_table)
    score_table = staticmethod(score_table)
    statistics_table = staticmethod(statistics_table)
    retrieval_columns = staticmethod(retrieval_columns)

    @staticmethod
    def html_table(frame: Any, left: int) -> str:
        return _html_table(frame, left)

    @staticmethod
    def slug(text: str) -> str:
        return _slug(text)

    @staticmethod
    def default_sections(kind: str, rows: Any, analysis: Any = None,
                         extra: Callable[[Any], str] | None = None) -> list[ReportSection]:
        """One section per table name (and session): mean ± SEM of the analysis's ``summary_value`` per ROI,
        or of every score when it has none; ``extra(rows)`` adds HTML to each section."""
        out = []
        sessions = "session" in rows and rows["session"].notna().any()
        for facet, part in rows.groupby(["analysis", *(["session"] if sessions else [])], sort=False, dropna=False):
            facet = facet if isinstance(facet, tuple) else (facet,)
            name = facet[0] if facet[1:] == () or facet[1] != facet[1] else f"{facet[0]}, session {facet[1]}"
            anchor = f"table-{_slug(kind + '-' + str(name))}"
            value = getattr(analysis, "summary_value", None) or "value"
            if value not in part.columns or part[value].isna().all():
                table = score_table(part)
                if not table.empty and len(table.columns) > 3:
                    out.append(ReportSection(anchor, f"{kind.capitalize()}: {name}",
                                             "<p class='note'>Mean ± SEM across subjects of each score (test split)."
                                             f"</p>{_html_table(table, 3)}<details><summary>Statistics per subject"
                                             f"</summary>{_html_table(statistics_table(part), 5)}</details>"))
                continue
            part = part[part["roi"] != "all"] if (part["roi"] != "all").any() else part
            what = getattr(analysis, "summary_what", None) or (
                SCORE_NAMES.get(value, value) if value != "value" else str(part.get("score_name", part["analysis"]).iloc[0]))
            body = (f"<p class='note'>Mean ± SEM across subjects (SEM only with two or more subjects); rows by layer "
                    f"depth, ROIs in dataset order.</p>{_html_table(summary_pivot(part, value), 3)}"
                    f"<details><summary>Statistics per subject (p: permutation test; q: Benjamini–Hochberg FDR across "
                    f"the sweep)</summary>{_html_table(statistics_table(part), 5)}</details>")
            out.append(ReportSection(anchor, f"{kind.capitalize()}: {name}, {what} per ROI",
                                     body + (extra(part) if extra else "")))
        return out


IMAGE_KINDS = ("reconstruction", "generation")  # their rows name a codec's latents or a generator, not an encoder


def models_line(frame: Any) -> str:
    """The encoders a sweep compared, apart from the codecs' latents and generators that made images."""
    if frame.empty:
        return "encoders: none"
    built = frame["kind"].isin(IMAGE_KINDS) if "kind" in frame.columns else frame["encoder"].isna()
    models = frame.loc[~built]
    random = models["random_weights"] if "random_weights" in models.columns else [False] * len(models)
    encoders = list(dict.fromkeys(shown_encoder(str(e), bool(r)) for e, r in zip(models["encoder"], random)))
    images = list(dict.fromkeys(frame.loc[built, "encoder"].astype(str)))
    return f"encoders: {', '.join(encoders) or 'none'}" + (f"; images made through: {', '.join(images)}" if images else "")


def summary_section(frame: Any) -> str:
    """The report's opening answer: each encoder's best layer per ROI with r (mean over subjects, SEM across
    subjects), r / noise ceiling and the largest FDR q over subjects; empty without encoding rows."""
    if not {"kind", "mean_r"} <= set(frame.columns):
        return ""
    rows = frame[(frame["kind"] == "encoding") & frame["mean_r"].notna()]
    if rows.empty:
        return ""
    best = best_layers(rows, "mean_r").rename(columns={"mean_r": "r", "sem": "SEM", "mean_r_normalized":
                                                         "r / ceiling", "q_fdr": "q (FDR, max over subjects)"})
    best = best.drop(columns=["n_subjects"])
    subjects = rows["subject"].nunique()
    return (f"<h2 id='summary'>Summary: best layer per ROI</h2><p class='note'>For each encoder and ROI, the layer "
            f"with the highest test-split Pearson r averaged over {subjects} subject{'s' if subjects != 1 else ''} "
            f"(SEM across subjects with two or more), r divided by the noise ceiling where the data have one, and the "
            f"largest Benjamini–Hochberg q of that layer over subjects.</p>{_html_table(best, 4)}")


def _run_section(s: Store, sweep: str) -> str:
    import yaml

    meta = s.meta(manifest_path(sweep)) or {}
    made = meta.get("provenance", {}) if isinstance(meta, dict) else {}
    config = s.open(manifest_path(sweep)).attrs.get("config") or made.get("config") or {}
    now = provenance()["versions"]
    then = made.get("versions", {})
    names = list(dict.fromkeys([*then, *now]))
    versions = "".join(f"<tr><td class='l'>{html.escape(n)}</td><td class='l'>{html.escape(str(then.get(n, '')))}</td>"
                       f"<td class='l'>{html.escape(str(now.get(n, '')))}</td></tr>" for n in names)
    facts = [("sweep finished", made.get("finished_at", "unknown")),
             ("report written", _dt.datetime.now().astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")),
             ("code revision", code_revision() or "not a git checkout"),
             ("host", made.get("host", "unknown")), ("seed", made.get("seed", "")),
             ("store", s.url)]
    rows = "".join(f"<tr><td class='l'>{html.escape(k)}</td><td class='l'>{html.escape(str(v))}</td></tr>" for k, v in facts)
    return (f"<h2 id='run'>How these results were made</h2><table>{rows}</table>"
            f"<h3 id='versions'>Package versions</h3><table><thead><tr><th class='l'>package</th>"
            f"<th class='l'>when the sweep ran</th><th class='l'>when the report was written</th></tr></thead>"
            f"<tbody>{versions}</tbody></table>"
            f"<h3 id='config'>Sweep config</h3><p class='note'>The values that differ from the defaults.</p>"
            f"<pre>{html.escape(yaml.safe_dump(non_default_config(config), sort_keys=False))}</pre>"
            f"<details><summary>The full config, defaults included</summary>"
            f"<pre>{html.escape(yaml.safe_dump(config, sort_keys=False))}</pre></details>")


def non_default_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config values that differ from ``SweepConfig``'s defaults, at every level its models describe (an
    encoder's ``label: null`` or ``options: {}`` go); sections that analyses claim are kept whole."""
    from brain_workbench.sweep.config import SweepConfig

    return _pruned(dict(config), SweepConfig)


def _pruned(value: Any, model: Any) -> Any:
    """``value`` (plain JSON data of ``model``) without the fields equal to their defaults, recursively."""
    import typing

    from pydantic import BaseModel

    def is_model(kind: Any) -> bool:
        return isinstance(kind, type) and issubclass(kind, BaseModel)

    def plain(default: Any) -> Any:
        return default.model_dump(mode="json") if isinstance(default, BaseModel) else default

    if not (is_model(model) and isinstance(value, dict)):
        return value
    out = {}
    for name, item in value.items():
        field = model.model_fields.get(name)
        if field is None:
            out[name] = item
            continue
        if not field.is_required() and name != "name":  # a name says what the entry is, default or not
            try:
                if item == plain(field.get_default(call_default_factory=True)):
                    continue
            except Exception:  # a default that cannot be built alone is shown, never guessed
                pass
        kinds = [field.annotation, *typing.get_args(field.annotation)]
        inner = [k for kind in kinds for k in (kind, *typing.get_args(kind)) if is_model(k)]
        if inner and isinstance(item, list):
            item = [_pruned(v, inner[0]) for v in item]
        elif inner:
            item = _pruned(item, inner[0])
        out[name] = item
    return out


def write_report(s: Store, sweep: str, out: Path, say: Callable[[str], None] | None = None) -> Path:
    """Write ``out/index.html`` (tables, statistics, captioned figures, an interactive surface view and how
    the results were made); returns its path."""
    frame = results_table(s, sweep)
    figures = write_figures(s, sweep, out, interactive=True, say=say)

    sections: list[tuple[str, str, str]] = []
    kit = ReportKit()
    kinds = list(dict.fromkeys(frame["kind"])) if not frame.empty else []
    for kind, analysis in analyses_for(kinds).items():
        rows = frame[frame["kind"] == kind]
        custom = analysis.report_section(rows, kit) if analysis is not None else []
        sections.extend((c.anchor, c.title, c.body) for c in custom or kit.default_sections(kind, rows, analysis))
    captions = figure_captions(out)
    figure_items = []
    for path in sorted(figures, key=lambda p: p.name != "rois.png"):  # the ROI map first: the others refer to it
        anchor = f"fig-{_slug(path.stem)}"
        caption = html.escape(captions.get(path.name) or path.stem.replace("_", " "))
        if path.suffix == ".html":
            item = (f"<figure id='{anchor}'><iframe src='{html.escape(path.name)}' title='interactive surface view'>"
                    f"</iframe><figcaption>{caption} <a href='{html.escape(path.name)}'>Open full page</a>."
                    f"</figcaption></figure>")
        else:
            item = (f"<figure id='{anchor}'><img src='{html.escape(path.name)}' alt='{caption}'>"
                    f"<figcaption>{caption}</figcaption></figure>")
        figure_items.append((anchor, path.stem.replace("_", " "), item))
    summary = summary_section(frame)
    toc = (["<li><a href='#summary'>Summary: best layer per ROI</a></li>"] if summary else []) + [
        "<li><a href='#run'>How these results were made</a><ul><li><a href='#versions'>Package versions</a></li>"
        "<li><a href='#config'>Sweep config</a></li></ul></li>"]
    if sections:
        toc.append("<li><a href='#tables'>Results tables</a><ul>" + "".join(
            f"<li><a href='#{a}'>{html.escape(t)}</a></li>" for a, t, _ in sections) + "</ul></li>")
    if figure_items:
        toc.append("<li><a href='#figures'>Figures</a><ul>" + "".join(
            f"<li><a href='#{a}'>{html.escape(t)}</a></li>" for a, t, _ in figure_items) + "</ul></li>")
    tables = "".join(f"<h3 id='{a}'>{html.escape(t)}</h3>{b}" for a, t, b in sections)
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(sweep)} · workbench report"
            f"</title><style>{STYLE}</style></head><body>"
            f"<h1>Sweep {html.escape(sweep)}</h1>"
            f"<p>{len(frame)} result rows; {html.escape(models_line(frame))}.</p>"
            f"<nav><strong>Contents</strong><ul>{''.join(toc)}</ul></nav>"
            f"{summary}{_run_section(s, sweep)}"
            + (f"<h2 id='tables'>Results tables</h2>{tables}" if sections else "")
            + (f"<h2 id='figures'>Figures</h2>{''.join(i for _, _, i in figure_items)}" if figure_items else "")
            + "</body></html>")
    (out / "index.html").write_text(page)
    return out / "index.html"
