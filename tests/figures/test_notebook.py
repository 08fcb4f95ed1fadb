"""Figures a notebook can use: the user's backend is kept, figure=/axes= are drawn into, Units are taken,
public names are unique across figures modules, and fsaverage6/7 data draw on their own mesh when it is local."""

from __future__ import annotations

import ast
import gzip
import subprocess
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brain_workbench.figures import (
    plot_adaptation_curve,
    plot_layer_profiles,
    plot_reconstructions,
    plot_retrieval,
    plot_retrieval_scores,
    plot_roi_labels,
    plot_surface_scores,
)
from brain_workbench.figures.brainmap import drawing_mesh, mesh_available
from brain_workbench.plugin.testing import sample_images
from brain_workbench.types import MeshUnavailableError, NotASurfaceError, Units, WorkbenchError

FIGURES = Path(__file__).resolve().parents[2] / "brain_workbench" / "figures"


@pytest.fixture
def plt():
    import matplotlib
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    yield plt
    plt.close("all")
    plt.switch_backend(before)


def layer_table() -> pd.DataFrame:
    rows = [{"encoder": e, "roi": r, "subject": s, "layer": f"l{d}", "depth": d / 2, "mean_r": 0.1 * d + 0.05 * k}
            for e in ("a", "b") for k, r in enumerate(("V1", "V4")) for s in ("1", "2") for d in range(3)]
    return pd.DataFrame(rows)


def left_units(n: int = 50, space: str = "fsaverage5", **rois: np.ndarray) -> Units:
    return Units(space, n, rois=rois, hemisphere=np.repeat("left", n), vertex=np.arange(n))


def stub_backend(monkeypatch: pytest.MonkeyPatch, name: str, framework: str | None) -> str:
    """A backend module registered for the test: an Agg canvas that needs ``framework`` (None: none)."""
    from matplotlib.backend_bases import FigureManagerBase
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = type("FigureCanvas", (FigureCanvasAgg,), {"required_interactive_framework": framework,
                                                       "manager_class": FigureManagerBase})
    module = types.ModuleType(name)
    module.FigureCanvas = canvas
    module.FigureManager = FigureManagerBase
    monkeypatch.setitem(sys.modules, name, module)
    return f"module://{name}"


def test_a_working_backend_is_kept(plt, monkeypatch) -> None:
    import matplotlib

    for backend in ("svg", stub_backend(monkeypatch, "workbench_inline_stub", None)):
        plt.switch_backend(backend)
        plot_layer_profiles(layer_table())
        plot_surface_scores(np.linspace(0, 1, 50), left_units(), views=["lateral"], hemispheres=["left"])
        assert matplotlib.get_backend() == backend


def test_an_interactive_backend_without_a_display_falls_back_to_agg(plt, monkeypatch) -> None:
    import matplotlib

    if not sys.platform.startswith("linux"):
        pytest.skip("'no display' is simulated by unsetting DISPLAY, which only Linux reads")
    for variable in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(variable, raising=False)
    matplotlib.rcParams["backend"] = stub_backend(monkeypatch, "workbench_tk_stub", "tk")
    with pytest.warns(UserWarning, match="cannot start here"):
        fig = plot_layer_profiles(layer_table())
    assert matplotlib.get_backend() == "agg" and fig.axes


def test_importing_and_drawing_leave_the_backend_alone(tmp_path) -> None:
    code = ("import matplotlib; import brain_workbench.figures as f, brain_workbench.figures.sweep, brain_workbench.report; "
            "import pandas as pd; f.plot_layer_profiles(pd.DataFrame({'encoder': ['a'] * 2, 'roi': ['V1'] * 2, "
            "'subject': ['1'] * 2, 'depth': [0.0, 1.0], 'mean_r': [0.1, 0.2]})); print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"MPLBACKEND": "svg", "PATH": "", "HOME": str(tmp_path)})
    assert out.stdout.strip() == "svg"


def test_2d_figures_draw_into_given_axes_and_figures(plt, tmp_path) -> None:
    fig, axes = plt.subplots(1, 2)
    assert plot_layer_profiles(layer_table(), axes=axes, title="mine") is fig
    assert [ax.get_title() for ax in axes] == ["mine\na", "b"] and all(ax.lines for ax in axes)
    with pytest.raises(WorkbenchError, match="axes= needs 2 matplotlib Axes, got 1"):
        plot_layer_profiles(layer_table(), axes=axes[0])
    own = plt.figure()
    assert plot_layer_profiles(layer_table(), figure=own) is own and len(own.axes) == 2
    out = plot_layer_profiles(layer_table(), figure=own, output_file=tmp_path / "mine.png")
    assert out.exists() and plt.fignum_exists(own.number), "a caller's figure is saved, not closed"

    adaptation = pd.DataFrame({"model": ["m"] * 2, "kind": ["shared"] * 2, "metric": ["top1"] * 2,
                               "value": [0.2, 0.4], "k_sessions": [1, 2]})
    fig, ax = plt.subplots()
    assert plot_adaptation_curve(adaptation, axes=ax) is fig and ax.lines
    decoding = pd.DataFrame({"encoder": ["e"] * 2, "layer": ["l"] * 2, "depth": [0.5] * 2, "roi": ["V1", "V4"],
                             "subject": ["1"] * 2, "top1": [0.3, 0.5], "chance_top1": [0.1, 0.1]})
    fig, ax = plt.subplots()
    assert plot_retrieval_scores(decoding, axes=ax) is fig and ax.patches


def test_image_grids_fill_the_area_of_a_given_axes(plt) -> None:
    targets = sample_images(6, 16, seed=1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5))
    box = right.get_position()
    assert plot_reconstructions(targets, targets, np.linspace(0, 1, 6), per_group=1, axes=right) is fig
    tiles = [ax for ax in fig.axes if ax is not left]
    assert right not in fig.axes and len(tiles) == 8
    assert all(box.x0 - 1e-9 <= ax.get_position().x0 and ax.get_position().x1 <= box.x1 + 1e-9 for ax in tiles)
    fig, ax = plt.subplots()
    assert plot_retrieval(np.eye(6), targets, k=2, queries=[0, 1], axes=ax) is fig and len(fig.axes) == 2 * 3


def test_surface_maps_take_units_and_turn_given_axes_3d(plt) -> None:
    units = left_units(V1=np.arange(50) < 20)
    fig, ax = plt.subplots()
    assert plot_surface_scores(np.linspace(0, 1, 50), units, views=["lateral"], hemispheres=["left"], axes=ax,
                               title="mine") is fig
    surface = [a for a in fig.axes if a.name == "3d"]
    assert len(surface) == 1 and surface[0].get_title() == "mine\nleft hemisphere, lateral"
    fig = plot_roi_labels(units, views=["lateral", "medial"], hemispheres=["left"],
                          axes=plt.subplots(1, 2, subplot_kw={"projection": "3d"})[1])
    assert [a.get_title() for a in fig.axes[:2]] == ["left hemisphere, lateral", "left hemisphere, medial"]
    assert fig.axes[1].get_legend() is not None and not fig.legends, "a caller's figure gets the legend on its axes"
    with pytest.raises(WorkbenchError, match="unknown ROI 'V2'"):
        plot_roi_labels(units, ["V2"])
    with pytest.raises(WorkbenchError, match="49 values for 50 units"):
        plot_surface_scores(np.ones(49), units)


def test_units_off_the_surface_raise_not_a_surface_error() -> None:
    with pytest.raises(NotASurfaceError, match="'MNI152' are not on a cortical surface"):
        plot_surface_scores(np.ones(3), Units("MNI152", 3, ijk=np.zeros((3, 3), int)))
    with pytest.raises(NotASurfaceError, match="no hemisphere and vertex"):
        plot_roi_labels(Units("fsaverage5", 3, rois={"A": [1, 0, 0]}))


def test_public_names_are_unique_across_figures_modules() -> None:
    seen: dict[str, str] = {}
    for path in sorted(FIGURES.glob("*.py")):
        if path.name == "__init__.py":
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                assert node.name not in seen, f"{node.name} is defined in {seen.get(node.name)} and {path.name}"
                seen[node.name] = path.name


@pytest.fixture
def no_local_meshes(tmp_path, monkeypatch) -> Path:
    for variable in ("NILEARN_DATA", "NILEARN_SHARED_DATA"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NILEARN_DATA", str(tmp_path / "nilearn_data"))
    return tmp_path / "nilearn_data"


def test_a_mesh_that_is_not_local_is_named_with_where_to_fetch_it(plt, no_local_meshes) -> None:
    units = left_units(space="fsaverage7")
    assert not mesh_available("fsaverage7")
    with pytest.warns(UserWarning, match=r"drawn on fsaverage5 .*load_fsaverage\('fsaverage7'\)"):
        fig = plot_surface_scores(np.linspace(0, 1, 50), units, views=["lateral"], hemispheres=["left"])
    assert len(fig.axes[0].collections[0]._facecolor3d) == 20480, "drawn on fsaverage5's faces"
    with pytest.raises(MeshUnavailableError, match=rf"fsaverage7 mesh is not in nilearn's data folder; fetch it "
                                                   rf"once, online, into {no_local_meshes}/fsaverage with "
                                                   r"nilearn.datasets.load_fsaverage\('fsaverage7'\)"):
        plot_surface_scores(np.ones(50), units, mesh="fsaverage7")
    with pytest.raises(WorkbenchError, match="cannot be drawn on the finer fsaverage6 mesh"):
        drawing_mesh("fsaverage5", "fsaverage6")
    assert not list(no_local_meshes.rglob("*.gii*")), "nothing was downloaded"


def write_subdivided_fsaverage6(folder: Path) -> None:
    """fsaverage6-sized inflated surfaces made by splitting each fsaverage5 triangle in four (as FreeSurfer does)."""
    import nibabel as nib
    from nilearn import datasets

    folder.mkdir(parents=True)
    mesh = datasets.load_fsaverage("fsaverage5")["inflated"]
    for hemi in ("left", "right"):
        coords, faces = mesh.parts[hemi].coordinates, mesh.parts[hemi].faces
        edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
        unique, index = np.unique(edges, axis=0, return_inverse=True)
        mid = len(coords) + index.reshape(3, -1).T
        a, b, c, ab, bc, ca = faces[:, 0], faces[:, 1], faces[:, 2], mid[:, 0], mid[:, 1], mid[:, 2]
        fine = np.concatenate([np.c_[a, ab, ca], np.c_[ab, b, bc], np.c_[ca, bc, c], np.c_[ab, bc, ca]])
        points = np.concatenate([coords, coords[unique].mean(axis=1)]).astype(np.float32)
        assert len(points) == 40962
        surface = nib.gifti.GiftiImage(darrays=[
            nib.gifti.GiftiDataArray(points, intent="NIFTI_INTENT_POINTSET", datatype="NIFTI_TYPE_FLOAT32"),
            nib.gifti.GiftiDataArray(fine.astype(np.int32), intent="NIFTI_INTENT_TRIANGLE",
                                     datatype="NIFTI_TYPE_INT32")])
        sulc = nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(
            points[:, 2].copy(), intent="NIFTI_INTENT_SHAPE", datatype="NIFTI_TYPE_FLOAT32")])
        for name, image in ((f"infl_{hemi}", surface), (f"sulc_{hemi}", sulc)):
            (folder / f"{name}.gii.gz").write_bytes(gzip.compress(image.to_bytes()))


def test_data_draw_on_their_own_mesh_when_it_is_local(plt, no_local_meshes) -> None:
    write_subdivided_fsaverage6(no_local_meshes / "fsaverage6")
    assert mesh_available("fsaverage6")
    units = left_units(n=40962, space="fsaverage6")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        fig = plot_surface_scores(np.linspace(0, 1, units.n), units, views=["lateral"], hemispheres=["left"])
    assert len(fig.axes[0].collections[0]._facecolor3d) == 4 * 20480, "drawn on fsaverage6's faces"
    coarse = plot_surface_scores(np.linspace(0, 1, units.n), units, mesh="fsaverage5", views=["lateral"],
                                 hemispheres=["left"])
    assert len(coarse.axes[0].collections[0]._facecolor3d) == 20480
