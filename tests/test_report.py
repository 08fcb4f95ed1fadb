"""The HTML report: navigation, provenance, statistics, order, captions, an offline interactive view, and a
real headless browser (Debian's chromium) that renders it without broken images or console errors."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

import brain_workbench as wb
from brain_workbench.report import write_report
from brain_workbench.store import open_store
from brain_workbench.sweep import Sweep, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import LayerInfo, digest


class Pixels:
    """Two layers of increasing detail, so layer order and depth differ from alphabetical order."""

    name, modality = "report-pixels", "image"

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("zeta-early", 0.0), LayerInfo("alpha-late", 1.0)]

    def encode(self, batch, layers):
        arrays = [np.asarray(im.convert("RGB").resize((8, 8)), dtype=np.float32) / 255 for im in batch]
        out = {"zeta-early": np.stack([np.r_[a.mean((0, 1)), a.std((0, 1))] for a in arrays]),
               "alpha-late": np.stack([a.ravel() for a in arrays])}
        return {k: out[k] for k in layers}

    def fingerprint(self) -> str:
        return digest("report-pixels", 1)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    wb.register("report-pixels", Pixels, kind="encoder", replace=True)
    root = tmp_path_factory.mktemp("report")
    cfg = config_from_dict({
        "name": "rep", "store": str(root / "s.zarr"),
        "dataset": {"name": "demo", "options": {"n_subjects": 2, "n_train": 40, "n_test": 12}},
        "encoders": [{"name": "report-pixels", "layers": [0.0, 1.0]}],
        "heads": [{"name": "ridge", "options": {"cv": 3}}], "permutations": 10})
    Sweep(cfg).run()
    store = open_store(str(root / "s.zarr"), mode="r")
    return write_report(store, "rep", root / "out"), store


def test_report_has_navigation_provenance_and_statistics(report) -> None:
    index, store = report
    page = index.read_text()
    anchors = set(re.findall(r"id='([^']+)'", page))
    links = re.findall(r"href='#([^']+)'", page)
    assert links and set(links) <= anchors, "every contents link points to a section on the page"
    for needed in ("Package versions", "Sweep config", "code revision", "report written", "numpy"):
        assert needed in page
    config = yaml.safe_load(re.search(r"<pre>(.*?)</pre>", page, re.S).group(1).replace("&#x27;", "'"))
    assert config["name"] == "rep" and config["encoders"][0]["name"] == "report-pixels"
    assert "p_permutation" in page and "q_fdr" in page and " ± " in page, "SEM across the two subjects is shown"


def test_report_orders_layers_by_depth_and_rois_as_the_dataset_does(report) -> None:
    index, store = report
    page = index.read_text()
    frame = results_table(store, "rep")
    rois = [r for r in dict.fromkeys(frame["roi"]) if r != "all"]
    assert rois != sorted(rois), "the demo's ROI order differs from alphabetical, so the check can fail"
    table = page[page.index("<h3 id='table-encoding"):]
    table = table[:table.index("</table>")]
    header = re.findall(r"<th[^>]*>([^<]+)</th>", table)
    assert header[3:] == rois
    assert table.index("zeta-early") < table.index("alpha-late"), "depth 0 before depth 1, not alphabetical"
    depths = re.findall(r"<td class='l'>(\d+\.\d+)</td>", page)
    assert depths and all(len(d.split(".")[1]) == 2 for d in depths), "depths print with two decimals"
    assert "white-space:nowrap" in page, "mean ± SEM cells do not wrap"
    shown = page[page.index("<h3 id='config'>"):]
    shown = html.unescape(shown[shown.index("<pre>") + 5:shown.index("</pre>")])
    assert "permutations: 10" in shown and "name: ridge" in shown and "cv: 3" in shown
    assert "label: null" not in shown and "average_repetitions" not in shown and "options: {}" not in shown
    assert "average_repetitions" in page[page.index("The full config"):], "the full config stays one click away"
    assert page.index("id='summary'") < page.index("id='run'"), "the report opens with its summary"
    summary = page[page.index("id='summary'"):]
    summary = summary[:summary.index("</table>")]
    best = frame[frame["roi"] != "all"].groupby(["roi", "layer"])["mean_r"].mean()
    for roi in rois:
        layer = best[roi].idxmax()
        assert re.search(rf"<td class='l'>{re.escape(roi)}</td><td class='l'>{layer}</td>", summary), roi
        assert f"{best[roi].max():.3f}" in summary
    figures = re.findall(r"<figure id='fig-([^']+)'", page)
    assert figures[0] == "rois", "the ROI map comes first: the other figures refer to its areas"


def test_every_figure_is_captioned_and_the_surface_view_is_offline(report) -> None:
    index, _ = report
    page = index.read_text()
    images = re.findall(r"<img src='([^']+)'", page)
    assert {"layers.png", "rois.png"} <= set(images) and any(i.startswith("brainmap_") for i in images)
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page, re.S)
    assert len(captions) == len(re.findall(r"<figure", page))
    assert all(len(c) > 60 and not re.fullmatch(r"[\w.-]+", c) for c in captions), "captions say what is shown"
    frames = re.findall(r"<iframe src='([^']+)'", page)
    assert frames and frames[0].startswith("surface_")
    for page_file in [index, *(index.parent / f for f in frames)]:
        text = html.unescape(html.unescape(page_file.read_text()))
        assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=[\"']?(https?:)?//", text, re.I), \
            f"{page_file.name} loads something from the network"
    assert "niivue" in html.unescape((index.parent / frames[0]).read_text()).lower(), "the viewer's code is inlined"


def _chromium() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.target && e.target.src)), true);
window.addEventListener('load', () => setTimeout(() => {
  const imgs = [...document.images];
  const canvases = d => [...d.querySelectorAll('canvas')].concat(
    ...[...d.querySelectorAll('iframe')].map(f => f.contentDocument ? canvases(f.contentDocument) : []));
  const frames = [...document.querySelectorAll('iframe')].map(f => {
    try { return {src: f.getAttribute('src'), canvases: canvases(f.contentDocument).filter(c => c.width > 0).length}; }
    catch (err) { return {src: f.getAttribute('src'), error: String(err)}; } });
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify({images: imgs.length, broken: imgs.filter(i => !i.complete || i.naturalWidth === 0)
    .map(i => i.getAttribute('src')), errors: window.__errors, frames: frames});
  document.body.appendChild(out);
}, 1500));
</script>"""


@pytest.mark.skipif(_chromium() is None, reason="no chromium binary (apt-get install -y chromium) to render the report")
def test_report_renders_in_a_headless_browser(report, tmp_path: Path) -> None:
    index, _ = report
    probe = index.parent / "probe.html"
    probe.write_text(index.read_text().replace("</body>", PROBE + "</body>"))
    browser = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
               "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=1",
               f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2400"]
    env = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run([*browser, "--virtual-time-budget=15000", "--dump-dom", probe.as_uri()], capture_output=True,
                         text=True, timeout=90, env=env)
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"the probe did not run: {dom.stderr[-2000:]}"
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert result["images"] >= 3 and result["broken"] == [], result
    assert result["errors"] == [], result
    assert result["frames"] and all(f.get("canvases") for f in result["frames"]), result
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line and ("rror" in line or "Uncaught" in line)]
    assert console == [], console
    shot = tmp_path / "shot.png"
    subprocess.run([*browser, "--virtual-time-budget=8000", f"--screenshot={shot}", index.as_uri()], capture_output=True,
                   timeout=90, env=env)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape[0] > 1000 and pixels.std() > 10 and (pixels < 128).mean() > 0.01, "the screenshot is blank"


def test_figure_rois_and_outlines_from_the_cli(report, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from brain_workbench.cli import app
    from brain_workbench.figures.sweep import draw_brainmap
    from brain_workbench.types import WorkbenchError

    _, store = report
    runner = CliRunner()
    for args in (["figure", "rois", "rep", "--roi", "V1", "--roi", "VOT", "--view", "posterior"],
                 ["figure", "brainmap", "rep", "--outline", "V1", "--outline", "VOT"],
                 ["figure", "brainmap", "rep", "--outlines", "--value", "best-layer"]):
        out = tmp_path / f"{args[1]}-{len(args)}.png"
        result = runner.invoke(app, [*args, "--store", store.url, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert out.stat().st_size > 10_000
    result = runner.invoke(app, ["figure", "brainmap", "rep", "--outline", "V9", "--store", store.url,
                                 "--out", str(tmp_path / "x.png")])
    assert isinstance(result.exception, WorkbenchError) and "known: V1, V2" in str(result.exception)
    assert not (tmp_path / "x.png").exists()
    fig = draw_brainmap(store, "rep", None, threshold=0.0, outlines=["V1"])
    assert "(r ≥ 0.00)" in fig._suptitle.get_text(), "the title states the threshold drawn (kept: r ≥ it), not the default"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["V1"]
    result = runner.invoke(app, ["figure", "brainmap", "rep", "--cmap", "viridis", "--vmin", "0.1", "--vmax", "0.5",
                                 "--view", "ventral", "--hemi", "left", "--store", store.url, "--out", str(tmp_path / "o.png")])
    assert result.exit_code == 0, result.output
    fig = draw_brainmap(store, "rep", None, cmap="viridis", vmin=0.1, vmax=0.5, threshold=0.0, views=["ventral"],
                        hemispheres=["left"])
    assert np.allclose(fig.axes[-1].get_ylim(), (0.1, 0.5)), "the colour bar spans --vmin..--vmax"
    mesh = fig.axes[0].collections[0]._facecolor3d
    import matplotlib

    viridis = matplotlib.colormaps["viridis"](np.linspace(0, 1, 256))[:, :3]
    coloured = mesh[(np.ptp(mesh[:, :3], axis=1) > 0.05)][:, :3]
    assert len(coloured) and np.min(np.abs(coloured[:, None] - viridis[None]).sum(-1), axis=1).max() < 0.02, \
        "coloured faces are viridis colours"
    assert [ax.get_title() for ax in fig.axes[:-1]] == ["left hemisphere, ventral"]


def test_a_decoding_sweep_reports_retrieval_with_chance_and_its_figure(tmp_path: Path) -> None:
    wb.register("report-pixels", Pixels, kind="encoder", replace=True)
    cfg = config_from_dict({
        "name": "dec", "store": str(tmp_path / "s.zarr"),
        "dataset": {"name": "demo", "options": {"n_subjects": 2, "n_train": 60, "n_test": 16}},
        "encoders": [{"name": "report-pixels", "layers": [0.0]}],
        "heads": [{"name": "decoder", "options": {"alphas": [1e4, 1e6], "cv": 3}}],
        "decoding": {"rois": ["all", "V1"], "n_way": [4], "n_subsets": 3}, "permutations": 10})
    Sweep(cfg).run()
    page = write_report(open_store(str(tmp_path / "s.zarr"), mode="r"), "dec", tmp_path / "out").read_text()
    assert "<img src='decoding.png'" in page and "black ticks: chance" in page
    assert "top1_brain_to_image" in page and "(0.062)" in page, "retrieval cells show chance (1/16 for top-1)"
    assert "Decoding: decoder" in page


HOSTILE = "</script><img src=x onerror=alert(1)>"


def test_hostile_labels_are_escaped_in_every_html_the_project_writes(tmp_path: Path) -> None:
    wb.register("report-pixels", Pixels, kind="encoder", replace=True)
    cfg = config_from_dict({
        "name": "hostile", "store": str(tmp_path / "s.zarr"),
        "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 30, "n_test": 10}},
        "encoders": [{"name": "report-pixels", "layers": [1.0], "label": HOSTILE}],
        "heads": [{"name": "ridge", "label": f"ridge{HOSTILE}"}], "permutations": 0})
    Sweep(cfg).run()
    out = write_report(open_store(str(tmp_path / "s.zarr"), mode="r"), "hostile", tmp_path / "out")
    pages = sorted(out.parent.glob("*.html"))
    assert any(p.name.startswith("surface_") for p in pages), [p.name for p in pages]
    for page in pages:
        text = page.read_text()
        assert "<img src=x onerror" not in text, f"{page.name} holds the label unescaped"
    assert html.escape(HOSTILE) in out.read_text()


def test_report_names_codecs_apart_from_encoders() -> None:
    """A codec's latents are not listed among the encoders in the report's first line (issue 23, item 4)."""
    import pandas as pd

    from brain_workbench.report import models_line

    frame = pd.DataFrame({"encoder": ["efficientnet", "clip", "taef2 latents", "efficientnet"],
                          "kind": ["encoding", "encoding", "reconstruction", "decoding"]})
    assert models_line(frame) == "encoders: efficientnet, clip; images made through: taef2 latents"
    assert models_line(frame[frame.kind == "encoding"]) == "encoders: efficientnet, clip"
    assert models_line(frame.iloc[:0]) == "encoders: none"
