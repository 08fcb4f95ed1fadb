"""Where a finished figure goes: saved and closed when a file is given (nilearn's convention), else returned."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_or_return(fig: Any, output_file: str | Path | None) -> Any:
    """Save ``fig`` to ``output_file`` (creating its folder) and close it, or return it unchanged."""
    if output_file is None:
        return fig
    import matplotlib.pyplot as plt

    Path(output_file).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output_file, dpi=110, facecolor="white")
    plt.close(fig)
    return Path(output_file)
