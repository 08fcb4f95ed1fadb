"""ROI label arrays from files (for example NSD's published ``lh.prf-visualrois.mgz`` and its ``.ctab``), as
named masks over a recording's units, for outlines and ROI maps drawn from the command line."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from brain_workbench.types import Units, WorkbenchError

HEMISPHERE_PREFIXES = {"lh": "left", "rh": "right", "left": "left", "right": "right"}
SURFACE_SUFFIXES = (".mgz", ".mgh", ".gii", ".annot", ".label")


def label_names(spec: str | None) -> dict[int, str]:
    """Names of integer labels: ``"1=V1v,2=V1d"``, or a colour table file (FreeSurfer ``.ctab``/LUT lines
    ``index name [r g b a]``, as NSD ships beside its ROI files); none for ``None``."""
    if not spec:
        return {}
    path = Path(spec).expanduser()
    if path.is_file():
        names = {}
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and re.fullmatch(r"-?\d+", parts[0]) and not line.lstrip().startswith("#"):
                names[int(parts[0])] = parts[1]
        if not names:
            raise WorkbenchError(f"{path} holds no 'index name' lines to name ROI labels")
        return names
    names = {}
    for item in spec.split(","):
        index, _, name = item.partition("=")
        if not re.fullmatch(r"\s*-?\d+\s*", index) or not name.strip():
            raise WorkbenchError(f"--roi-names {spec!r}: write 'INDEX=NAME' pairs separated by commas (1=V1v,2=V1d) "
                                 "or give a colour table file")
        names[int(index)] = name.strip()
    return names


def _hemisphere_of(path: Path) -> str:
    head = path.name.split(".")[0].lower()
    if head not in HEMISPHERE_PREFIXES:
        raise WorkbenchError(f"{path.name}: a surface label file must name its hemisphere first (lh.… or rh.…, as "
                             "FreeSurfer and NSD do)")
    return HEMISPHERE_PREFIXES[head]


def _surface_labels(path: Path) -> np.ndarray:
    """Integer labels per vertex of one hemisphere from a FreeSurfer/GIFTI file (nibabel)."""
    import nibabel as nib

    if path.suffix == ".annot":
        return np.asarray(nib.freesurfer.read_annot(str(path))[0], dtype=np.int64)
    if path.suffix == ".label":
        raise WorkbenchError(f"{path.name}: FreeSurfer .label files list vertices without a mesh size; convert it "
                             "to .mgz or give an .npz of masks")
    image = nib.load(str(path))
    data = image.darrays[0].data if path.suffix == ".gii" else image.get_fdata()  # type: ignore[attr-defined]
    return np.rint(np.asarray(data).reshape(-1)).astype(np.int64)


def _unit_labels(units: Units, hemisphere: str, labels: np.ndarray, where: str) -> np.ndarray:
    """Per-vertex labels of one hemisphere read at the units' vertices (0 for units of the other hemisphere)."""
    if units.hemisphere is None or units.vertex is None:
        raise WorkbenchError(f"{where}: the units have no surface vertices to read per-vertex labels at")
    mine = np.asarray(units.hemisphere).astype(str) == hemisphere
    vertex = np.asarray(units.vertex, dtype=np.int64)
    if mine.any() and vertex[mine].max() >= len(labels):
        raise WorkbenchError(f"{where}: {len(labels)} labels, but the units reach vertex {int(vertex[mine].max())} "
                             f"of the {hemisphere} hemisphere ({units.space}); use labels of that mesh")
    out = np.zeros(units.n, dtype=np.int64)
    out[mine] = labels[vertex[mine]]
    return out


def _masks_from_labels(labels: np.ndarray, names: Mapping[int, str], where: str) -> dict[str, np.ndarray]:
    values = [int(v) for v in np.unique(labels) if v > 0]
    if not values:
        raise WorkbenchError(f"{where}: no unit carries a label above 0")
    return {names.get(v, f"label {v}"): labels == v for v in values}


def load_roi_files(paths: Sequence[str | Path], units: Units, names: str | None = None) -> dict[str, np.ndarray]:
    """Named boolean masks over ``units`` from ROI files, in file and label order.

    ``.npz``: either one mask (or 0/1 array) per unit for each key, or integer labels per vertex under keys
    ``lh``/``rh`` (``left``/``right``); ``.npy``: integer labels per unit; ``lh.*``/``rh.*`` ``.mgz``,
    ``.mgh``, ``.gii``, ``.annot``: integer labels per vertex of that hemisphere. ``names`` names labels.
    """
    labels_named = label_names(names)
    masks: dict[str, np.ndarray] = {}
    per_unit = np.zeros(units.n, dtype=np.int64)
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.is_file():
            raise WorkbenchError(f"ROI file {path} does not exist")
        where = f"ROI file {path.name}"
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: np.asarray(data[k]) for k in data.files}
            hemis = {HEMISPHERE_PREFIXES[k.lower()]: v for k, v in arrays.items() if k.lower() in HEMISPHERE_PREFIXES}
            if hemis:
                for hemisphere, labels in hemis.items():
                    per_unit = np.where(per_unit > 0, per_unit,
                                        _unit_labels(units, hemisphere, labels.reshape(-1).astype(np.int64), where))
                continue
            for key, mask in arrays.items():
                mask = mask.reshape(-1)
                if mask.shape != (units.n,) or not np.isin(mask, (0, 1)).all():
                    raise WorkbenchError(f"{where}: {key!r} must be a 0/1 mask with one value per unit ({units.n}), "
                                         f"got shape {mask.shape}")
                masks[key] = mask.astype(bool)
        elif path.suffix == ".npy":
            labels = np.load(path, allow_pickle=False).reshape(-1)
            if labels.shape != (units.n,):
                raise WorkbenchError(f"{where}: {labels.shape[0]} labels for {units.n} units; give one per unit")
            per_unit = np.where(per_unit > 0, per_unit, np.rint(labels).astype(np.int64))
        elif path.suffix in SURFACE_SUFFIXES:
            per_unit = np.where(per_unit > 0, per_unit,
                                _unit_labels(units, _hemisphere_of(path), _surface_labels(path), where))
        else:
            raise WorkbenchError(f"{where}: use .npz, .npy or a surface label file ({', '.join(SURFACE_SUFFIXES)})")
    if per_unit.any():
        masks.update(_masks_from_labels(per_unit, labels_named, "ROI files"))
    if not masks:
        raise WorkbenchError("the ROI files hold no ROI over these units")
    return masks
