"""Tiny random diffusers pipelines for the diffusion generator tests, saved the way real weights ship.

Each builder makes a pipeline from random components (UNets of about 1 M parameters, a tiny VAE
or MoVQ, tiny CLIP text and vision towers), writes it with ``save_pretrained`` into a folder and
returns that folder, so the plugins load it back through their ``path`` option exactly as they load
downloaded weights. The tokenizer is a real CLIP BPE tokenizer built from the vocabulary that
open_clip ships (``bpe_simple_vocab_16e6.txt.gz``), so nothing is downloaded.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

EMBED = 32        # width of every tiny CLIP embedding and cross-attention context
TEXT_TOKENS = 77  # CLIP context length
VD_IMAGE_TOKENS = 257  # Versatile Diffusion hard-codes 257 image tokens (16 × 16 patches + class token)


@functools.cache
def clip_tokenizer() -> Any:
    """A transformers ``CLIPTokenizer`` with CLIP's real BPE vocabulary and merges (built once).

    The merges come from the ``bpe_simple_vocab_16e6.txt.gz`` that open_clip ships; the vocabulary is
    built from them the way CLIP's own tokenizer builds it (byte symbols, their end-of-word forms,
    one token per merge, then the two special tokens). The file is read without importing open_clip,
    which takes seconds.
    """
    import gzip
    import importlib.util

    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    spec = importlib.util.find_spec("open_clip")
    assert spec is not None and spec.origin is not None, "open_clip is not installed"
    bpe = Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.decompress(bpe.read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + ["<start_of_text>", "<end_of_text>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, bos_token="<start_of_text>",
                         eos_token="<end_of_text>", pad_token="<end_of_text>", unk_token="<end_of_text>",
                         model_max_length=TEXT_TOKENS)


def _text_config(**extra: Any) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=49408, hidden_size=EMBED, intermediate_size=37, num_hidden_layers=2,
                          num_attention_heads=4, max_position_embeddings=TEXT_TOKENS, bos_token_id=49406,
                          eos_token_id=49407, pad_token_id=49407, **extra)


def clip_text_model(projection: bool = False, seed: int = 0) -> Any:
    """A two-layer CLIP text tower (hidden width 32), with a projection head when ``projection``."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    if projection:
        return CLIPTextModelWithProjection(_text_config(projection_dim=EMBED)).eval()
    return CLIPTextModel(_text_config()).eval()


def clip_vision_model(image_size: int = 32, patch_size: int = 4, seed: int = 0) -> Any:
    """A two-layer CLIP vision tower with a 32-wide projection (``image_embeds``)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=EMBED, projection_dim=EMBED, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=37, image_size=image_size, patch_size=patch_size)
    return CLIPVisionModelWithProjection(config).eval()


def image_processor(size: int = 32) -> Any:
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(crop_size={"height": size, "width": size}, size={"shortest_edge": size})


def vae(seed: int = 0, levels: int = 2) -> Any:
    """An AutoencoderKL with 4 latent channels and scale factor 2^(levels − 1) (2 for tests, 8 like SD with 4)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    channels = [16, 32, 32, 32][:levels]
    return AutoencoderKL(block_out_channels=channels, in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=["DownEncoderBlock2D"] * levels, up_block_types=["UpDecoderBlock2D"] * levels,
                         norm_num_groups=8, sample_size=32)


def sd_unet(cross_attention_dim: int = EMBED, seed: int = 0, **extra: Any) -> Any:
    """An SD-style UNet2DConditionModel: two levels, cross-attention in the inner one."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim, attention_head_dim=8, norm_num_groups=8, **extra)


def ddim(**extra: Any) -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon", **extra)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---- Kandinsky 2.2 decoder -----------------------------------------------------------------------
def kandinsky_pipeline() -> Any:
    """A KandinskyV22Pipeline: image-embedding-conditioned UNet (learned variance) and a tiny MoVQ."""
    from diffusers import DDIMScheduler, KandinskyV22Pipeline, UNet2DConditionModel, VQModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        in_channels=4, out_channels=8, addition_embed_type="image", encoder_hid_dim=EMBED,
        encoder_hid_dim_type="image_proj", cross_attention_dim=EMBED, attention_head_dim=4,
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn", block_out_channels=(32, 64), layers_per_block=1,
        resnet_time_scale_shift="scale_shift", class_embed_type=None, norm_num_groups=8)
    torch.manual_seed(0)
    movq = VQModel(block_out_channels=[32, 64], down_block_types=["DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
                   up_block_types=["AttnUpDecoderBlock2D", "UpDecoderBlock2D"], in_channels=3, out_channels=3,
                   latent_channels=4, layers_per_block=1, norm_num_groups=8, norm_type="spatial",
                   num_vq_embeddings=12, vq_embed_dim=4)
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=0.00085, beta_end=0.012,
                              clip_sample=False, set_alpha_to_one=False, steps_offset=0, prediction_type="epsilon",
                              thresholding=False)
    return KandinskyV22Pipeline(unet=unet, scheduler=scheduler, movq=movq)


# ---- Stable unCLIP ------------------------------------------------------------------------------------
def unclip_pipeline(with_image_encoder: bool = True) -> Any:
    """A StableUnCLIPImg2ImgPipeline; the UNet's class embedding reads the noised image embedding."""
    from diffusers import DDPMScheduler, StableUnCLIPImg2ImgPipeline
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer

    unet = sd_unet(class_embed_type="projection", projection_class_embeddings_input_dim=EMBED * 2)
    return StableUnCLIPImg2ImgPipeline(
        feature_extractor=image_processor(32) if with_image_encoder else None,
        image_encoder=clip_vision_model() if with_image_encoder else None,
        image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=EMBED),
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=clip_tokenizer(), text_encoder=clip_text_model(), unet=unet, scheduler=ddim(), vae=vae())


# ---- SD / SDXL with an IP-Adapter --------------------------------------------------------------------------
def sd_pipeline(vae_levels: int = 2) -> Any:
    """A StableDiffusionPipeline (text-to-image layout, as SD 1.5 ships) without safety checker."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(vae=vae(levels=vae_levels), text_encoder=clip_text_model(), tokenizer=clip_tokenizer(),
                                   unet=sd_unet(), scheduler=ddim(), safety_checker=None, feature_extractor=None,
                                   image_encoder=None, requires_safety_checker=False)


def sdxl_pipeline() -> Any:
    """A StableDiffusionXLPipeline: two text towers (32 + 32 = 64-wide context) and time-id conditioning."""
    from diffusers import StableDiffusionXLPipeline

    unet = sd_unet(cross_attention_dim=2 * EMBED, addition_embed_type="text_time", addition_time_embed_dim=8,
                   projection_class_embeddings_input_dim=8 * 6 + EMBED, transformer_layers_per_block=(1, 1))
    return StableDiffusionXLPipeline(vae=vae(), text_encoder=clip_text_model(), text_encoder_2=clip_text_model(True, 1),
                                     tokenizer=clip_tokenizer(), tokenizer_2=clip_tokenizer(), unet=unet,
                                     scheduler=ddim(), image_encoder=None, feature_extractor=None,
                                     force_zeros_for_empty_prompt=True)


def ip_adapter_state_dict(unet: Any, image_embed_dim: int = EMBED, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the published IP-Adapter layout: ``image_proj.*`` (4 tokens) and ``ip_adapter.<k>.to_{k,v}_ip``.

    Keys follow the order in which diffusers' loader walks ``unet.attn_processors`` (odd ids for the
    cross-attention processors), which is the layout of the released ``ip-adapter_sd15`` files.
    """
    gen = torch.Generator().manual_seed(seed)
    cross = unet.config.cross_attention_dim
    state: dict[str, torch.Tensor] = {
        "image_proj.proj.weight": torch.randn(cross * 4, image_embed_dim, generator=gen) * 0.1,
        "image_proj.proj.bias": torch.zeros(cross * 4),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    channels = list(unet.config.block_out_channels)
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        for part in ("to_k_ip", "to_v_ip"):
            state[f"ip_adapter.{key_id}.{part}.weight"] = torch.randn(hidden, cross, generator=gen) * 0.1
        key_id += 2
    return state


# ---- Versatile Diffusion ---------------------------------------------------------------------------------
def versatile_pipeline() -> Any:
    """A VersatileDiffusionPipeline in the universal layout shi-labs publishes (image_unet + text_unet).

    The vision tower has 16 × 16 patches so it yields the 257 tokens the dual-guided pipeline assumes.
    """
    from diffusers import UNet2DConditionModel, VersatileDiffusionPipeline
    from diffusers.pipelines.deprecated.versatile_diffusion.modeling_text_unet import UNetFlatConditionModel

    common = dict(block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=EMBED, attention_head_dim=8,
                  norm_num_groups=8)
    torch.manual_seed(0)
    image_unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4,
                                      down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                      up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **common)
    torch.manual_seed(1)
    text_unet = UNetFlatConditionModel(sample_size=16, in_channels=4, out_channels=4,
                                       down_block_types=("DownBlockFlat", "CrossAttnDownBlockFlat"),
                                       up_block_types=("CrossAttnUpBlockFlat", "UpBlockFlat"),
                                       mid_block_type="UNetMidBlockFlatCrossAttn", **common)
    return VersatileDiffusionPipeline(
        tokenizer=clip_tokenizer(), image_feature_extractor=image_processor(32),
        text_encoder=clip_text_model(projection=True), image_encoder=clip_vision_model(32, 2),
        image_unet=image_unet, text_unet=text_unet, vae=vae(), scheduler=ddim())


def save(pipeline: Any, folder: Path) -> Path:
    """Write a pipeline with ``save_pretrained`` (safetensors) and return the folder."""
    pipeline.save_pretrained(str(folder), safe_serialization=True)
    return folder


def save_ip_adapter(unet: Any, path: Path, image_embed_dim: int = EMBED, seed: int = 0) -> Path:
    """Write random IP-Adapter weights as one safetensors file (the published flat-key layout)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in ip_adapter_state_dict(unet, image_embed_dim, seed).items()}, str(path))
    return path
