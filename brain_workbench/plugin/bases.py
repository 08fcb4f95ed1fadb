"""Optional base classes for plugins: what every encoder would otherwise write again.

``EncoderBase`` loads the model on first need (listing layers stays cheap where the architecture
allows), caches the layer list and the fingerprint, and checks requested layer names with one
clear sentence. A subclass implements ``load_model``, ``list_layers``, ``compute_fingerprint`` and
``encode``.
"""

from __future__ import annotations

from collections.abc import Sequence

from brain_workbench.types import LayerInfo, WorkbenchError


class EncoderBase:
    """Lazy model loading, cached ``layers()`` and ``fingerprint()``, and layer-name checks."""

    name: str
    modality: str = "image"
    _loaded: bool = False
    _layers: list[LayerInfo] | None = None
    _fingerprint: str | None = None

    # ---- what a subclass provides --------------------------------------------------------------
    def load_model(self) -> None:
        """Build the model and whatever ``encode`` needs (weights, preprocessing); called at most once."""
        raise NotImplementedError

    def list_layers(self) -> list[LayerInfo]:
        """The layers from input to output; may call ``self.ensure_loaded()`` when only the model knows them."""
        raise NotImplementedError

    def compute_fingerprint(self) -> str:
        """A digest of everything that changes the features (called once, after loading)."""
        raise NotImplementedError

    # ---- shared behaviour -----------------------------------------------------------------------
    def ensure_loaded(self) -> None:
        if not self._loaded:
            self.load_model()
            self._loaded = True

    def layers(self) -> list[LayerInfo]:
        if self._layers is None:
            self._layers = list(self.list_layers())
        return list(self._layers)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self.ensure_loaded()
            self._fingerprint = self.compute_fingerprint()
        return self._fingerprint

    def check_layers(self, layers: Sequence[str]) -> list[str]:
        """``layers`` as a list, or one sentence naming the first unknown layer and the known ones."""
        names = [layer.name for layer in self.layers()]
        unknown = [layer for layer in layers if layer not in names]
        if unknown:
            shown = ", ".join(names) if len(names) <= 12 else f"{', '.join(names[:3])} … {', '.join(names[-3:])}"
            name = getattr(self, "name", type(self).__name__)
            raise WorkbenchError(f"{name} has no layer {unknown[0]!r}; its layers are {shown}")
        return list(layers)
