"""The sae plugin: SAELens folders against a hand computation, TopK/BatchTopK/Matryoshka training, resume, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.plugin.testing import check_encoder
from brain_workbench.store import Store
from brain_workbench.store.features import extract_features
from brain_workbench.store.paths import encoder_key, feature_path
from brain_workbench.types import LayerInfo, StimulusSet, WorkbenchError

D_IN, N_ATOMS, K = 16, 48, 3


def planted(n: int = 1024, seed: int = 0) -> np.ndarray:
    """Inputs that are sparse (K of N_ATOMS unit atoms, positive weights) plus an offset."""
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((N_ATOMS, D_IN))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    codes = np.zeros((n, N_ATOMS))
    for i in range(n):
        codes[i, rng.choice(N_ATOMS, K, replace=False)] = rng.uniform(1.0, 3.0, K)
    return (codes @ atoms + 0.3).astype(np.float32)


DATA = planted()


class TableEncoder:
    """A base encoder that looks stimulus ``s0042`` up as row 42 of DATA (layer ``x``), or its negation (``y``)."""

    name = "table"
    modality = "text"

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("x", 0.5), LayerInfo("y", 1.0)]

    def fingerprint(self) -> str:
        return "table-v1"

    def encode(self, batch: list, layers: list[str]) -> dict[str, np.ndarray]:
        rows = DATA[[int(s[1:]) for s in batch]]
        return {layer: rows if layer == "x" else -rows for layer in layers}


STIMULI = StimulusSet(tuple(f"s{i:04d}" for i in range(len(DATA))), "text", lambda ids: list(ids))


@pytest.fixture(autouse=True)
def table_encoder() -> None:
    wb.register("table", TableEncoder, kind="encoder", replace=True, modalities=("text",))


@pytest.fixture
def features(tmp_store: Store) -> str:
    extract_features(tmp_store, TableEncoder(), STIMULI, layers=["x"], batch_size=256)
    return feature_path(encoder_key(TableEncoder(), STIMULI), "x")


def write_saelens(folder: Path, cfg: dict, weights: dict[str, np.ndarray]) -> Path:
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}, str(folder / "sae_weights.safetensors"))
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return folder


def random_weights(d_sae: int = 40, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"W_enc": rng.standard_normal((D_IN, d_sae)).astype(np.float32) * 0.5,
            "b_enc": rng.standard_normal(d_sae).astype(np.float32) * 0.1,
            "W_dec": rng.standard_normal((d_sae, D_IN)).astype(np.float32) * 0.2,
            "b_dec": rng.standard_normal(D_IN).astype(np.float32) * 0.1}


def by_hand(x: np.ndarray, w: dict[str, np.ndarray], activation: str, k: int | None = None,
            b_dec_in: bool = True, norm: str = "none") -> tuple[np.ndarray, np.ndarray]:
    x = x.astype(np.float64)
    coeff = np.sqrt(D_IN) / np.linalg.norm(x, axis=1, keepdims=True) if norm == "constant_norm_rescale" else 1.0
    pre = (x * coeff - (w["b_dec"] if b_dec_in else 0)) @ w["W_enc"] + w["b_enc"]
    if activation == "relu":
        z = np.maximum(pre, 0)
    elif activation == "jumprelu":
        z = np.where(pre > w["threshold"], np.maximum(pre, 0), 0)
    else:
        z = np.zeros_like(pre)
        top = np.argsort(-pre, axis=1)[:, :k]
        np.put_along_axis(z, top, np.maximum(np.take_along_axis(pre, top, 1), 0), 1)
    return z, (z @ w["W_dec"] + w["b_dec"]) / coeff


def test_registration_imports_no_torch() -> None:
    code = "import sys, brain_workbench_plugins.sae; assert 'torch' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_default_factory_is_cheap() -> None:
    enc = wb.encoder("sae")
    assert enc.base_name == "clip" and enc.modality == "image"
    assert [layer.name for layer in enc.layers()] == ["latents", "reconstruction"]
    assert not enc._loaded, "building the sae encoder must not load the base model"


@pytest.mark.parametrize("case", [
    {"cfg": {"architecture": "standard"}, "activation": "relu"},
    {"cfg": {"activation_fn_str": "relu", "apply_b_dec_to_input": False}, "activation": "relu", "b_dec_in": False},
    {"cfg": {"architecture": "topk", "k": 5}, "activation": "topk", "k": 5},
    {"cfg": {"activation_fn_str": "topk", "activation_fn_kwargs": {"k": 7}}, "activation": "topk", "k": 7},
    {"cfg": {"architecture": "jumprelu"}, "activation": "jumprelu"},
    {"cfg": {"architecture": "standard", "normalize_activations": "constant_norm_rescale"}, "activation": "relu",
     "norm": "constant_norm_rescale"},
])
def test_saelens_folder_matches_hand_computation(tmp_path: Path, case: dict) -> None:
    weights = random_weights()
    if case["activation"] == "jumprelu":
        weights["threshold"] = np.abs(np.random.default_rng(5).standard_normal(40)).astype(np.float32) * 0.5
    cfg = {"d_in": D_IN, "d_sae": 40, "dtype": "float32", "hook_name": "x", **case["cfg"]}
    folder = write_saelens(tmp_path / "sae", cfg, weights)
    enc = wb.encoder("sae", base="table", path=str(folder))
    assert enc.base_layer == "x", "the layer recorded as hook_name is the default"
    batch = [f"s{i:04d}" for i in (3, 17, 256, 999)]
    out = enc.encode(batch, ["latents", "reconstruction"])
    z, x_hat = by_hand(DATA[[3, 17, 256, 999]], weights, case["activation"], case.get("k"),
                       case.get("b_dec_in", True), case.get("norm", "none"))
    np.testing.assert_allclose(out["latents"], z, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["reconstruction"], x_hat, rtol=1e-4, atol=1e-5)
    if case["activation"] == "topk":
        assert ((out["latents"] > 0).sum(1) <= case["k"]).all()
    check_encoder(enc, stimuli=batch)


def test_layer_option_and_fingerprint(tmp_path: Path) -> None:
    folder = write_saelens(tmp_path / "sae", {"d_in": D_IN, "d_sae": 40, "architecture": "standard"}, random_weights())
    on_x = wb.encoder("sae", base="table", path=str(folder), layer="x")
    on_y = wb.encoder("sae", base="table", path=str(folder), layer=1.0)
    assert on_y.base_layer == "y"
    assert on_x.fingerprint() != on_y.fingerprint()
    other = write_saelens(tmp_path / "other", {"d_in": D_IN, "d_sae": 40, "architecture": "standard"}, random_weights(seed=2))
    assert wb.encoder("sae", base="table", path=str(other), layer="x").fingerprint() != on_x.fingerprint()


def test_unsupported_saes_are_refused(tmp_path: Path) -> None:
    gated = write_saelens(tmp_path / "gated", {"d_in": D_IN, "d_sae": 40, "architecture": "gated"}, random_weights())
    with pytest.raises(WorkbenchError, match="gated"):
        wb.encoder("sae", base="table", path=str(gated)).fingerprint()
    wrong = write_saelens(tmp_path / "wrong", {"d_in": D_IN + 1, "d_sae": 40}, random_weights())
    with pytest.raises(WorkbenchError, match="shape"):
        wb.encoder("sae", base="table", path=str(wrong)).fingerprint()
    with pytest.raises(WorkbenchError, match="not an SAELens folder"):
        wb.encoder("sae", base="table", path=str(tmp_path)).fingerprint()
    with pytest.raises(WorkbenchError, match="either path"):
        wb.encoder("sae", base="table", path="a", checkpoint="b")


def test_untrained_baseline_sae() -> None:
    enc = wb.encoder("sae", base="table", layer="x", d_sae=64, k=4)
    out = enc.encode([f"s{i:04d}" for i in range(5)], ["latents"])["latents"]
    assert out.shape == (5, 64) and ((out > 0).sum(1) <= 4).all()
    assert enc.fingerprint() == wb.encoder("sae", base="table", layer="x", d_sae=64, k=4).fingerprint()


def test_topk_training_learns_and_is_exactly_k_sparse(tmp_store: Store, features: str) -> None:
    from brain_workbench_plugins.sae.train import TrainConfig, train_sae

    result = train_sae(tmp_store, features, TrainConfig(kind="topk", d_sae=N_ATOMS, k=K, steps=400, batch_size=256,
                                                        lr=5e-3, log_every=100, checkpoint_every=200))
    evs = [h["explained_variance"] for h in result.history]
    assert evs[-1] > evs[0] + 0.2 and evs[-1] > 0.6, evs
    assert result.metrics["l0"] == pytest.approx(K)
    assert 0.0 <= result.metrics["dead_fraction"] < 0.5
    assert result.checkpoint.endswith("step-00000400")


def test_interrupted_training_resumes_and_matches_uninterrupted(tmp_store: Store, features: str) -> None:
    from brain_workbench_plugins.sae.train import TrainConfig, checkpoints, load_checkpoint, train_sae

    cfg = TrainConfig(kind="topk", d_sae=N_ATOMS, k=K, steps=300, batch_size=128, lr=5e-3, log_every=50,
                      checkpoint_every=100)

    def crash(step: int, record: dict) -> None:
        if step == 250:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_sae(tmp_store, features, cfg, name="resumed", progress=crash)
    assert [step for step, _ in checkpoints(tmp_store, "sae/resumed")] == [100, 200]
    resumed = train_sae(tmp_store, features, cfg, name="resumed")
    assert resumed.resumed_from == 200 and resumed.step == 300
    straight = train_sae(tmp_store, features, cfg, name="straight")
    a, _ = load_checkpoint(tmp_store, resumed.key)
    b, _ = load_checkpoint(tmp_store, straight.key)
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        np.testing.assert_allclose(getattr(a, name).numpy(), getattr(b, name).numpy(), rtol=1e-5, atol=1e-6)
    assert [h["step"] for h in resumed.history] == [h["step"] for h in straight.history]
    assert len(checkpoints(tmp_store, "sae/straight")) == cfg.keep

    longer = train_sae(tmp_store, features, TrainConfig(**{**cfg.__dict__, "steps": 350}), name="resumed")
    assert longer.resumed_from == 300 and longer.step == 350


@pytest.mark.parametrize("kind", ["batchtopk", "matryoshka"])
def test_batch_topk_kinds_train_and_export(tmp_store: Store, features: str, tmp_path: Path, kind: str) -> None:
    from brain_workbench_plugins.sae.model import load_saelens
    from brain_workbench_plugins.sae.train import TrainConfig, export_saelens, load_checkpoint, train_sae

    result = train_sae(tmp_store, features, TrainConfig(kind=kind, d_sae=N_ATOMS, k=K, steps=300, batch_size=256,
                                                        lr=5e-3, log_every=100, prefixes=[12, 24]))
    evs = [h["explained_variance"] for h in result.history]
    assert evs[-1] > 0.5 and evs[-1] > evs[1], evs
    assert 0.5 * K < result.metrics["l0"] < 2 * K
    folder = export_saelens(tmp_store, result.key, str(tmp_path / kind))
    cfg = json.loads((Path(folder) / "cfg.json").read_text())
    assert cfg["architecture"] == "jumprelu" and cfg["d_in"] == D_IN and cfg["d_sae"] == N_ATOMS
    exported, trained = load_saelens(folder), load_checkpoint(tmp_store, result.key)[0]
    import torch

    x = torch.from_numpy(DATA[:64])
    np.testing.assert_allclose(exported(x)[1].numpy(), trained(x)[1].numpy(), atol=1e-5)


def test_sae_encoder_reads_a_store_checkpoint(tmp_store: Store, features: str) -> None:
    from brain_workbench_plugins.sae.train import TrainConfig, load_checkpoint, train_sae

    result = train_sae(tmp_store, features, TrainConfig(kind="topk", d_sae=N_ATOMS, k=K, steps=50, batch_size=128))
    enc = wb.encoder("sae", base="table", checkpoint=result.key, store=tmp_store.url)
    assert enc.base_layer == "x" and enc.modality == "text"
    out = enc.encode(["s0001", "s0500"], ["latents"])["latents"]
    sae, _ = load_checkpoint(tmp_store, result.key)
    import torch

    np.testing.assert_allclose(out, sae.encode(torch.from_numpy(DATA[[1, 500]])).numpy(), atol=1e-5)
    assert (out > 0).sum(1).tolist() == [K, K]
    paths = extract_features(tmp_store, enc, STIMULI.subset(STIMULI.ids[:40]), layers=["latents"])
    assert tmp_store.is_complete(paths["latents"])


def test_cli_train_list_export(tmp_store: Store, features: str, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from brain_workbench_plugins.sae import register_commands

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    register_commands(app)
    runner = CliRunner()
    args = ["sae", "train", features, "--store", tmp_store.url, "--kind", "topk", "--d-sae", str(N_ATOMS), "--k", str(K),
            "--steps", "60", "--batch-size", "128", "--log-every", "20", "--export", str(tmp_path / "out"), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["step"] == 60 and report["metrics"]["l0"] == pytest.approx(K)
    assert (tmp_path / "out" / "sae_weights.safetensors").is_file()
    listed = runner.invoke(app, ["sae", "list", "--store", tmp_store.url, "--json"])
    assert listed.exit_code == 0, listed.output
    assert [row["key"] for row in json.loads(listed.stdout)] == [report["key"]]
    again = runner.invoke(app, args)
    assert json.loads(again.stdout)["resumed_from"] == 60
