"""Time-resolved decoding results: which score a time course follows and where it peaks (per head, encoder, layer
and unit set, averaged over subjects)."""

from __future__ import annotations

from typing import Any


def timecourse_score(frame: Any) -> str | None:
    """The score a time course shows: top-1 k-way at the largest k, else top-1 over the test set."""
    kway = [c for c in frame.columns if c.startswith("top1_of") and c.endswith("_brain_to_image")
            and frame[c].notna().any()]
    if kway:
        return max(kway, key=lambda c: int(c[len("top1_of"):].split("_")[0]))
    return "top1_brain_to_image" if "top1_brain_to_image" in frame.columns else None


def timecourse_table(frame: Any, score: str) -> list[dict[str, Any]]:
    """Per analysis, encoder, layer and ROI: the window centre of peak mean score, the peak, chance and null 95 %."""
    out = []
    for (analysis, encoder, layer, roi), rows in frame.groupby(["analysis", "encoder", "layer", "roi"], sort=False):
        curve = rows.groupby("window_centre_s")[[score, f"chance_{score}"]].mean().sort_index()
        peak = curve[score].idxmax()
        null = f"null95_{score}"
        out.append({"analysis": analysis, "encoder": encoder, "layer": layer, "roi": roi, "peak_s": float(peak),
                    "peak": float(curve[score].max()), "chance": float(curve[f"chance_{score}"].mean()),
                    "null95_at_peak": float(rows[rows["window_centre_s"] == peak][null].mean())
                    if null in rows.columns else float("nan")})
    return out
