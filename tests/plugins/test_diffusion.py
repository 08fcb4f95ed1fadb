"""The diffusion generators run real diffusers pipelines, built tiny and random, saved and loaded from local folders."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import brain_workbench
import diffusion_fixtures as F
from brain_workbench.sdk import Generator, WorkbenchError

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

TINY = "tiny-random"  # an embedding space with no known width: only the pipeline's own widths are checked
RNG = np.random.default_rng(0)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models on a shared machine: one intra-op thread is 5–10× faster than two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every tiny pipeline written once with save_pretrained, plus IP-Adapter weight files."""
    root = tmp_path_factory.mktemp("pipelines")
    out = {"kandinsky": F.save(F.kandinsky_pipeline(), root / "kandinsky"),
           "unclip": F.save(F.unclip_pipeline(), root / "unclip"),
           "versatile": F.save(F.versatile_pipeline(), root / "versatile")}
    sd = F.sd_pipeline()
    out["sd"] = F.save(sd, root / "sd")
    out["sd-ip"] = F.save_ip_adapter(sd.unet, root / "ip" / "ip-adapter_tiny.safetensors")
    xl = F.sdxl_pipeline()
    out["sdxl"] = F.save(xl, root / "sdxl")
    out["sdxl-ip"] = F.save_ip_adapter(xl.unet, root / "ip-xl" / "ip-adapter_tiny_xl.safetensors")
    return out


def make(name: str, **options):
    options = {"embedding_space": TINY, "steps": 2, "device": "cpu", **options}
    return brain_workbench.get_registry().create("generator", name, **options)


def embeds(n: int, *shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


def init_images(n: int, size: int = 40) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# ---- registration ---------------------------------------------------------------------------------
def test_every_backend_is_registered_with_its_options() -> None:
    from typer.testing import CliRunner

    from brain_workbench.cli import app

    listed = json.loads(CliRunner().invoke(app, ["generators", "list", "--json"]).stdout)
    names = {e["name"]: e for e in listed}
    assert {"kandinsky-2.2", "stable-unclip", "ip-adapter", "versatile-diffusion"} <= set(names)
    for entry in names.values():
        if entry["plugin"] == "diffusion":
            assert {"path", "steps", "guidance_scale", "dtype", "device", "batch_size", "seed", "best_of",
                    "embedding_space"} <= set(entry["options"])
    assert "noise_level" in names["stable-unclip"]["options"]
    assert "strength" in names["kandinsky-2.2"]["options"] and "ip_adapter" in names["ip-adapter"]["options"]
    plugins = json.loads(CliRunner().invoke(app, ["plugins", "list", "--json"]).stdout)
    diffusion = next(p for p in plugins if p["name"] == "diffusion")
    assert diffusion["status"] == "ok" and len(diffusion["provides"]["generator"]) == 4
    info = CliRunner().invoke(app, ["generators", "info", "versatile-diffusion"])
    assert info.exit_code == 0 and "mix" in info.stdout


# ---- Kandinsky 2.2 --------------------------------------------------------------------------------------
def test_kandinsky_shapes_seeds_batching_and_img2img(folders: dict[str, Path]) -> None:
    gen = make("kandinsky-2.2", path=str(folders["kandinsky"]), size=64, batch_size=2)
    assert isinstance(gen, Generator)
    e = embeds(3, 32)
    a = gen.generate(e, seed=3)
    assert a.shape == (3, 64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, gen.generate(e, seed=3))
    assert not np.array_equal(a, gen.generate(e, seed=4))
    one_by_one = make("kandinsky-2.2", path=str(folders["kandinsky"]), size=64, batch_size=1).generate(e, seed=3)
    assert np.abs(a.astype(int) - one_by_one.astype(int)).max() <= 1  # per-row seeds: batching changes nothing
    b = gen.generate(e, init_images=init_images(3), seed=3)
    assert b.shape == (3, 64, 64, 3) and not np.array_equal(a, b)


def test_kandinsky_matches_the_diffusers_pipeline_called_directly(folders: dict[str, Path]) -> None:
    from diffusers import KandinskyV22Img2ImgPipeline

    gen = make("kandinsky-2.2", path=str(folders["kandinsky"]), size=64, steps=4, strength=0.5)
    e, init = embeds(2, 32), init_images(2, 64)
    ours = gen.generate(e, init_images=init, seed=0)
    pipe = KandinskyV22Img2ImgPipeline.from_pretrained(folders["kandinsky"], local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    from PIL import Image

    from brain_workbench_plugins.diffusion.base import row_seed

    ref = pipe(image_embeds=torch.from_numpy(e), negative_image_embeds=torch.zeros(2, 32),
               image=[Image.fromarray(x) for x in init], height=64, width=64, num_inference_steps=4, strength=0.5,
               guidance_scale=4.0, output_type="np",
               generator=[torch.Generator().manual_seed(row_seed(0, i, 0)) for i in range(2)]).images
    np.testing.assert_array_equal(ours, np.clip(np.rint(ref * 255), 0, 255).astype(np.uint8))


def test_kandinsky_refuses_a_strength_that_leaves_no_step(folders: dict[str, Path]) -> None:
    gen = make("kandinsky-2.2", path=str(folders["kandinsky"]), size=64, steps=2, strength=0.3)
    with pytest.raises(WorkbenchError, match=r"int\(steps × strength\)"):
        gen.generate(embeds(1, 32), init_images=init_images(1))
    assert gen.pipe is None  # refused before anything was loaded


def test_embedding_widths_are_checked_before_generation(folders: dict[str, Path]) -> None:
    with pytest.raises(WorkbenchError, match="width 32.*ViT-bigG-14.*1280"):
        make("kandinsky-2.2", path=str(folders["kandinsky"]), embedding_space="ViT-bigG-14/laion2b_s39b_b160k").generate(
            embeds(1, 1280))
    gen = make("kandinsky-2.2", path=str(folders["kandinsky"]), size=64)
    assert gen.embedding_dim == 32
    with pytest.raises(WorkbenchError, match=r"shape \(n, 32\)"):
        gen.generate(embeds(2, 31))
    with pytest.raises(WorkbenchError, match="takes no text"):
        gen.generate(embeds(2, 32), text_embeds=embeds(2, 77, 32))
    bad = embeds(2, 32)
    bad[0, 0] = np.nan
    with pytest.raises(WorkbenchError, match="NaN"):
        gen.generate(bad)
    with pytest.raises(WorkbenchError, match="uint8"):
        gen.generate(embeds(2, 32), init_images=init_images(2).astype(np.float32))
    assert gen.pipe is None


def test_missing_or_wrong_folders_are_one_sentence(folders: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="does not exist; put the diffusers folder of kandinsky-community"):
        make("kandinsky-2.2", path=str(tmp_path / "nowhere")).generate(embeds(1, 32))
    with pytest.raises(WorkbenchError, match="no pipeline folder"):
        make("kandinsky-2.2").generate(embeds(1, 32))
    with pytest.raises(WorkbenchError, match="holds a StableDiffusionPipeline pipeline"):
        make("kandinsky-2.2", path=str(folders["sd"])).generate(embeds(1, 32))
    with pytest.raises(WorkbenchError, match="no option 'stength'"):
        make("kandinsky-2.2", stength=0.5)
    with pytest.raises(WorkbenchError, match="fp16' needs a GPU"):
        make("kandinsky-2.2", path=str(folders["kandinsky"]), size=64, dtype="fp16").generate(embeds(1, 32))


@pytest.mark.skipif(importlib.util.find_spec("accelerate") is not None, reason="accelerate is installed here")
def test_cpu_offload_without_accelerate_names_the_extra(folders: dict[str, Path]) -> None:
    with pytest.raises(WorkbenchError, match=r"brain-workbench\[offload\]"):
        make("kandinsky-2.2", path=str(folders["kandinsky"]), cpu_offload=True).generate(embeds(1, 32))


# ---- Stable unCLIP -----------------------------------------------------------------------------------------
def test_unclip_batches_embeddings_and_matches_the_pipeline(folders: dict[str, Path]) -> None:
    from diffusers import StableUnCLIPImg2ImgPipeline

    from brain_workbench_plugins.diffusion.base import row_seed

    gen = make("stable-unclip", path=str(folders["unclip"]), noise_level=50, batch_size=3)
    e = embeds(3, 32)
    ours = gen.generate(e, seed=5)
    assert ours.shape == (3, 32, 32, 3)
    pipe = StableUnCLIPImg2ImgPipeline.from_pretrained(folders["unclip"], local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(image_embeds=torch.from_numpy(e), noise_level=50, num_inference_steps=2, output_type="np",
                  generator=[torch.Generator().manual_seed(row_seed(5, i, 0)) for i in range(3)])
    ref = pipe(prompt=[""] * 3, **kwargs).images
    np.testing.assert_array_equal(ours, np.clip(np.rint(ref * 255), 0, 255).astype(np.uint8))
    with pytest.raises(RuntimeError, match="size of tensor"):  # the pitfall: no prompt per embedding, batches clash
        pipe(image_embeds=torch.from_numpy(e), noise_level=50, num_inference_steps=2, output_type="np")
    text = gen.generate(e, text_embeds=embeds(3, 77 * 32), seed=5)
    assert text.shape == ours.shape and not np.array_equal(text, ours)


def test_unclip_refusals(folders: dict[str, Path], tmp_path: Path) -> None:
    gen = make("stable-unclip", path=str(folders["unclip"]))
    with pytest.raises(WorkbenchError, match="cannot start from an image"):
        gen.generate(embeds(1, 32), init_images=init_images(1))
    with pytest.raises(WorkbenchError, match="noise_level must be below 1000"):
        make("stable-unclip", path=str(folders["unclip"]), noise_level=1000).generate(embeds(1, 32))
    stripped = tmp_path / "unclip-no-encoder"
    shutil.copytree(folders["unclip"], stripped)
    shutil.rmtree(stripped / "image_encoder")
    with pytest.raises(WorkbenchError, match="has no image_encoder folder.*reads the image encoder's dtype"):
        make("stable-unclip", path=str(stripped)).generate(embeds(1, 32))


def test_best_of_n_keeps_the_candidate_closest_to_the_embedding(folders: dict[str, Path]) -> None:
    e = embeds(2, 32, seed=7)
    gen = make("stable-unclip", path=str(folders["unclip"]), best_of=3, batch_size=4)
    best = gen.generate(e, seed=2)
    sel = gen.last_selection
    assert sel is not None and sel["similarities"].shape == (2, 3)
    np.testing.assert_array_equal(sel["candidate"], sel["similarities"].argmax(1))
    single = make("stable-unclip", path=str(folders["unclip"])).generate(e, seed=2)  # = candidate 0 of each row

    pipe = gen.pipe  # re-embed independently with the pipeline's CLIP tower through transformers
    with torch.inference_mode():
        def cos(images: np.ndarray) -> np.ndarray:
            px = pipe.feature_extractor(images=list(images), return_tensors="pt").pixel_values
            z = pipe.image_encoder(px).image_embeds.numpy()
            return (z * e).sum(1) / np.linalg.norm(z, axis=1) / np.linalg.norm(e, axis=1)

        np.testing.assert_allclose(cos(best), sel["similarity"], atol=1e-4)  # batch of 2 here vs 6 in the ranking
        np.testing.assert_allclose(cos(single), sel["similarities"][:, 0], atol=1e-4)
    assert (sel["similarity"] >= sel["similarities"][:, 0]).all()


def test_best_of_n_with_a_registered_encoder_checks_its_width_first(folders: dict[str, Path]) -> None:
    class PixelEmbedding:
        """Means of a 4 × 4 × 2 grid of pixel blocks: a tiny, deterministic image encoder of any width."""

        modality = "image"

        def __init__(self, width: int = 32) -> None:
            self.width = width

        def layers(self):
            return [brain_workbench.LayerInfo("embedding", 1.0)]

        def fingerprint(self) -> str:
            return f"pixels-{self.width}"

        def encode(self, batch, layers):
            arr = np.stack([np.asarray(im.resize((16, 16)), np.float32) for im in batch])
            return {"embedding": arr.reshape(len(batch), -1)[:, : self.width] - 128.0}

    brain_workbench.register("pixel-embedding", PixelEmbedding, kind="encoder", replace=True)
    e = embeds(2, 32, seed=3)
    gen = make("kandinsky-2.2", path=str(folders["kandinsky"]), size=64, best_of=2, rank_with="pixel-embedding")
    out = gen.generate(e)
    assert out.shape == (2, 64, 64, 3) and gen.last_selection["candidate"].shape == (2,)
    narrow = make("kandinsky-2.2", path=str(folders["kandinsky"]), size=64, best_of=2, rank_with="pixel-embedding",
                  rank_options={"width": 16})
    with pytest.raises(WorkbenchError, match="width 16.*width 32"):
        narrow.generate(e)
    assert narrow.pipe is None
    with pytest.raises(WorkbenchError, match="no image encoder to rank"):
        make("kandinsky-2.2", path=str(folders["kandinsky"]), size=64, best_of=2).generate(e)


# ---- SD / SDXL + IP-Adapter ----------------------------------------------------------------------------------
def test_ip_adapter_sd_img2img_carries_the_negative_half(folders: dict[str, Path]) -> None:
    from diffusers import StableDiffusionImg2ImgPipeline
    from PIL import Image

    from brain_workbench_plugins.diffusion.base import row_seed

    gen = make("ip-adapter", path=str(folders["sd"]), ip_adapter=str(folders["sd-ip"]), steps=4, strength=0.5)
    e, init = embeds(2, 32), init_images(2, 32)
    ours = gen.generate(e, init_images=init, seed=1)
    assert ours.shape == (2, 32, 32, 3)
    assert gen.generate(e, seed=1).shape == (2, 32, 32, 3)  # text-to-image when no init images

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(folders["sd"], local_files_only=True)
    pipe.load_ip_adapter(str(folders["sd-ip"].parent), subfolder="", weight_name=folders["sd-ip"].name,
                         image_encoder_folder=None, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    x = torch.from_numpy(e)[:, None]

    def call(ip):
        return pipe(prompt=[""] * 2, image=[Image.fromarray(a) for a in init], ip_adapter_image_embeds=[ip],
                    strength=0.5, num_inference_steps=4, guidance_scale=7.5, output_type="np",
                    generator=[torch.Generator().manual_seed(row_seed(1, i, 0)) for i in range(2)]).images

    ref = call(torch.cat([torch.zeros_like(x), x]))
    np.testing.assert_array_equal(ours, np.clip(np.rint(ref * 255), 0, 255).astype(np.uint8))
    positive_only = call(x)  # diffusers splits these rows into a fake negative and positive without complaint
    assert not np.allclose(positive_only, ref, atol=1e-3)
    text = gen.generate(e, init_images=init, text_embeds=embeds(2, 77, 32), seed=1)
    assert not np.array_equal(text, ours)


def test_ip_adapter_ranks_with_its_image_encoder_folder(folders: dict[str, Path], tmp_path: Path) -> None:
    encoder = F.clip_vision_model(seed=3)
    encoder.save_pretrained(str(tmp_path / "image_encoder"))
    gen = make("ip-adapter", path=str(folders["sd"]), ip_adapter=str(folders["sd-ip"]), best_of=2,
               image_encoder=str(tmp_path / "image_encoder"))
    out = gen.generate(embeds(1, 32), seed=0)
    assert out.shape == (1, 32, 32, 3) and gen.last_selection["similarities"].shape == (1, 2)
    with pytest.raises(WorkbenchError, match="no image encoder to rank"):
        make("ip-adapter", path=str(folders["sd"]), ip_adapter=str(folders["sd-ip"]), best_of=2).generate(embeds(1, 32))


def test_ip_adapter_sdxl_and_adapter_checks(folders: dict[str, Path], tmp_path: Path) -> None:
    gen = make("ip-adapter", path=str(folders["sdxl"]), ip_adapter=str(folders["sdxl-ip"]))
    assert gen.generate(embeds(2, 32), init_images=init_images(2), seed=0).shape == (2, 32, 32, 3)
    with pytest.raises(WorkbenchError, match="takes no text"):
        gen.generate(embeds(2, 32), text_embeds=embeds(2, 77, 64))
    with pytest.raises(WorkbenchError, match="no IP-Adapter weights"):
        make("ip-adapter", path=str(folders["sd"])).generate(embeds(1, 32))
    with pytest.raises(WorkbenchError, match="cross-attends to width 32"):  # SDXL adapter on an SD 1.5 UNet
        make("ip-adapter", path=str(folders["sd"]), ip_adapter=str(folders["sdxl-ip"])).generate(embeds(1, 32))
    from safetensors.torch import save_file

    plus = tmp_path / "ip-adapter-plus.safetensors"
    save_file({"image_proj.latents": torch.zeros(1, 16, 32), "image_proj.proj_in.weight": torch.zeros(32, 32)}, str(plus))
    with pytest.raises(WorkbenchError, match="not a basic Plus/FaceID"):
        make("ip-adapter", path=str(folders["sd"]), ip_adapter=str(plus)).generate(embeds(1, 32))


# ---- Versatile Diffusion --------------------------------------------------------------------------------------
def test_versatile_dual_guided_runs_with_the_shim(folders: dict[str, Path]) -> None:
    from brain_workbench_plugins.diffusion.compat import dual_transformer_needs_shim, load_versatile

    if dual_transformer_needs_shim():  # the upstream bug the shim exists for (diffusers#13651)
        raw = load_versatile(folders["versatile"], torch.float32)
        raw.set_progress_bar_config(disable=True)
        from PIL import Image

        with pytest.raises(TypeError, match="encoder_attention_mask"):
            raw(prompt="a cat", image=Image.fromarray(init_images(1, 32)[0]), num_inference_steps=1, output_type="np")
    gen = make("versatile-diffusion", path=str(folders["versatile"]), batch_size=2)
    assert gen.embedding_shape == (257, 32) and gen.text_embedding_shape == (77, 32)
    img, txt = embeds(3, 257, 32), embeds(3, 77 * 32)
    a = gen.generate(img, text_embeds=txt, init_images=init_images(3), seed=0)
    assert a.shape == (3, 32, 32, 3) and a.dtype == np.uint8
    duals = sum(type(m).__name__.endswith("DualTransformer2DModel") for m in gen.pipe.image_unet.modules())
    assert duals == 4 and gen.patched == (duals if dual_transformer_needs_shim() else 0)  # down, mid, 2 × up
    np.testing.assert_array_equal(a, gen.generate(img, text_embeds=txt, init_images=init_images(3), seed=0))
    image_only = gen.generate(img.reshape(3, -1), seed=0)
    assert image_only.shape == a.shape and not np.array_equal(image_only, a)


def test_versatile_loop_reproduces_the_dual_guided_pipeline(folders: dict[str, Path]) -> None:
    """Fed the pipeline's own token encodings of a prompt and an image, the loop equals the pipeline's __call__."""
    from PIL import Image

    from brain_workbench_plugins.diffusion.base import row_seed

    gen = make("versatile-diffusion", path=str(folders["versatile"]), steps=3, mix=0.4)
    pipe = gen.load()
    image = Image.fromarray(init_images(1, 32)[0])
    with torch.inference_mode():
        text_tokens = pipe._encode_text_prompt(["a red cat"], gen.device, 1, False).numpy()
        image_tokens = pipe._encode_image_prompt([image], gen.device, 1, False).numpy()
    ours = gen.generate(image_tokens, text_embeds=text_tokens, seed=9)
    ref = pipe(prompt="a red cat", image=image, text_to_image_strength=0.4, num_inference_steps=3, guidance_scale=7.5,
               generator=torch.Generator().manual_seed(row_seed(9, 0, 0)), output_type="np").images
    np.testing.assert_array_equal(ours, np.clip(np.rint(ref * 255), 0, 255).astype(np.uint8))


def test_dual_transformer_shim_keeps_the_maths_and_routes_masks() -> None:
    from diffusers.models.transformers.dual_transformer_2d import DualTransformer2DModel

    from brain_workbench_plugins.diffusion.compat import masked_dual_transformer_class

    torch.manual_seed(0)
    module = DualTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=16, norm_num_groups=8,
                                    cross_attention_dim=8).eval()
    module.condition_lengths = [5, 7]
    x, ctx = torch.randn(2, 16, 4, 4), torch.randn(2, 12, 8)
    with torch.no_grad():
        before = DualTransformer2DModel.forward(module, x, ctx, return_dict=False)[0]
        module.__class__ = masked_dual_transformer_class()
        after = module(x, ctx, encoder_attention_mask=None, return_dict=False)[0]
        keep_all = module(x, ctx, encoder_attention_mask=torch.zeros(2, 1, 12), return_dict=False)[0]
        bias = torch.zeros(2, 1, 12)
        bias[:, :, 2:5] = -10000.0  # hide three text tokens from the text transformer
        masked = module(x, ctx, encoder_attention_mask=bias, return_dict=False)[0]
        ref_text = module.transformers[1](x, encoder_hidden_states=ctx[:, [0, 1]], return_dict=False)[0] - x
        ref_image = module.transformers[0](x, encoder_hidden_states=ctx[:, 5:], return_dict=False)[0] - x
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    torch.testing.assert_close(keep_all, before, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(masked, ref_text * 0.5 + ref_image * 0.5 + x, rtol=1e-4, atol=1e-5)


# ---- fingerprints --------------------------------------------------------------------------------------------
def test_fingerprint_covers_folder_options_and_not_the_device(folders: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "kandinsky"
    shutil.copytree(folders["kandinsky"], copy)
    fp = make("kandinsky-2.2", path=str(copy)).fingerprint()
    assert fp == make("kandinsky-2.2", path=str(copy), batch_size=7, device="auto", seed=3).fingerprint()
    assert fp != make("kandinsky-2.2", path=str(copy), steps=3).fingerprint()
    assert fp != make("kandinsky-2.2", path=str(copy), dtype="bf16").fingerprint()
    weights = next((copy / "unet").glob("*.safetensors"))
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = make("kandinsky-2.2", path=str(copy)).fingerprint()
    assert touched != fp  # stat mode: a weight file's mtime is part of the digest
    content = make("kandinsky-2.2", path=str(copy), digest="content").fingerprint()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    assert make("kandinsky-2.2", path=str(copy), digest="content").fingerprint() == content
    hidden = copy / ".cache" / "huggingface" / "download" / "unet.metadata"  # written by `hf download --local-dir`
    hidden.parent.mkdir(parents=True)
    hidden.write_text("etag")
    assert make("kandinsky-2.2", path=str(copy), digest="content").fingerprint() == content
    config = copy / "scheduler" / "scheduler_config.json"
    config.write_text(config.read_text().replace('"steps_offset": 0', '"steps_offset": 1'))
    assert make("kandinsky-2.2", path=str(copy), digest="content").fingerprint() != content


@pytest.mark.parametrize("name, folder, img2img, extra", [
    ("kandinsky-2.2", "kandinsky", False, {}),
    ("stable-unclip", "unclip", False, {"noise_level": 50}),
    ("ip-adapter", "sd", True, {"ip_adapter": "sd-ip", "strength": 0.5}),
    ("versatile-diffusion", "versatile", True, {"strength": 0.5}),
])
def test_progress_counts_images_and_denoising_steps(folders: dict[str, Path], name, folder, img2img, extra) -> None:
    options = {k: str(folders[v]) if k == "ip_adapter" else v for k, v in extra.items()}
    gen = make(name, path=str(folders[folder]), batch_size=1, steps=4, size=32, **options)
    width = (257, 32) if name == "versatile-diffusion" else (32,)
    images, steps = [], []
    gen.generate(embeds(2, *width), init_images=init_images(2) if img2img else None, seed=0,
                 on_images=images.append, on_step=steps.append)
    assert images == [1, 1], "one call per batch of one image"
    assert len(steps) == 2 * gen.denoising_steps(img2img) == 2 * (2 if img2img else 4) and set(steps) == {1}
