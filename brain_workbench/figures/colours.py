"""The one colour of each ROI, shared by every figure kind (line plots, label maps, outlines, subsets).

An ROI's colour is fixed by its position in the dataset's ROI order, never by which ROIs a figure shows,
so V1 has the same colour in ``layers.png``, ``rois.png``, outlines and ``figure layers --roi V1 --roi VOT``.
"""

from __future__ import annotations

from collections.abc import Sequence

RGBA = tuple[float, float, float, float]


def roi_colours(names: Sequence[str], order: Sequence[str] | None = None) -> dict[str, RGBA]:
    """One RGBA colour per name in ``names``: tab10 (tab20 beyond 10 ROIs) indexed by the name's place in
    ``order`` (the dataset's ROI order; names outside it follow it, in the order given)."""
    import matplotlib

    full = list(dict.fromkeys([*(order or []), *names]))
    palette = matplotlib.colormaps["tab10" if len(full) <= 10 else "tab20"]

    def rgba(i: int) -> RGBA:
        r, g, b, a = (float(c) for c in palette(i % palette.N))
        return r, g, b, a

    index = {name: i for i, name in enumerate(full)}
    return {name: rgba(index[name]) for name in names}
