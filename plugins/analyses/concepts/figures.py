"""Concept figures: brain maps of chosen latents' r, the best latent's label per vertex, and a grid of each chosen
latent's top stimuli (loaded through the dataset plugin)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from brain_workbench.sdk.analysis import build, result_path, rgb_image

MAX_LABELS = 6


def cell_arrays(kit: Any, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A finished cell's arrays and its attributes."""
    reader = kit.store.open(result_path(kit.sweep, key))
    return {name: reader[name] for name in reader.names()}, dict(reader.attrs)


def concept_figures(rows: Any, kit: Any) -> list[Path]:
    paths: list[Path] = []
    for encoder, part in rows.groupby("encoder", sort=False):
        paths += encoder_figures(kit, str(encoder), str(sorted(part["cell"])[0]))
    return paths


def encoder_figures(kit: Any, encoder: str, key: str) -> list[Path]:
    """One SAE encoder's figures, from its first subject's cell."""
    arrays, attrs = cell_arrays(kit, key)
    subject, response = attrs["cell"]["subject"], attrs["cell"]["response_path"]
    spec, dataset = attrs["task"]["spec"], attrs["task"]["dataset"]
    safe, labels = kit.file_label(encoder), [str(x) for x in arrays["labels"]]
    paths: list[Path] = []
    for latent, r in zip(arrays["chosen"].tolist(), arrays["chosen_r"]):
        name = labels[latent] or "no label"
        paths += kit.draw_surface(
            f"concepts_latent{latent}_{safe}.png", (key, latent),
            lambda p, r=r, latent=latent, name=name: kit.surface_values(
                p, r, response, threshold=spec["min_r"], colorbar_label=f"Pearson r with latent {latent}",
                title=f"{encoder} latent {latent} ({name}), subject {subject}"),
            f"Pearson r between {encoder} latent {latent} (label: {name}) and each vertex's response over subject "
            f"{subject}'s stimuli; r below {spec['min_r']} is not coloured.")
    masks = best_latent_masks(arrays, labels, spec["min_r"])
    if masks:
        paths += kit.draw_surface(
            f"concepts_best_latent_{safe}.png", (key, "best"),
            lambda p: kit.surface_labels(p, masks, response, legend="best latent: caption label",
                                         title=f"{encoder}: best latent per vertex, subject {subject}"),
            f"Each vertex coloured by the {encoder} latent most correlated with it (legend: latent and its caption "
            f"label), for the {len(masks)} latents best for most vertices; vertices whose best r is below "
            f"{spec['min_r']} or whose best latent is rarer are not coloured.")
    if len(arrays["chosen"]):
        paths.append(kit.draw(
            f"concepts_top_stimuli_{safe}.png", (key, "grid"),
            lambda p: plot_top_stimuli(p, arrays, labels, dataset, f"{encoder}: top stimuli of chosen latents"),
            f"The top {arrays['top_ids'].shape[1]} stimuli of each chosen {encoder} latent (rows), with their "
            "activations; row titles give the latent's caption label."))
    return paths


def best_latent_masks(arrays: dict[str, np.ndarray], labels: list[str], min_r: float) -> dict[str, np.ndarray]:
    """Unit masks of the latents that are best for most units (best r ≥ ``min_r``), named 'latent: label'."""
    good = arrays["best_r"] >= min_r
    if not good.any():
        return {}
    counts = np.bincount(arrays["best_latent"][good], minlength=len(labels))
    top = [int(i) for i in np.argsort(-counts, kind="stable")[:MAX_LABELS] if counts[i] > 0]
    return {f"{i}: {' '.join(labels[i].split()[:2]) or 'no label'}": good & (arrays["best_latent"] == i) for i in top}


def plot_top_stimuli(path: Path, arrays: dict[str, np.ndarray], labels: list[str], dataset: dict[str, Any],
                     title: str) -> Path:
    """A grid: one row per chosen latent, its top stimuli as images with their activations."""
    import matplotlib.pyplot as plt

    chosen = arrays["chosen"].tolist()
    ids, acts = arrays["top_ids"][chosen], arrays["top_acts"][chosen]
    loader = build("dataset", dataset["name"], **dataset["options"]).stimuli("image").loader
    k = ids.shape[1]
    fig, axes = plt.subplots(len(chosen), k, figsize=(1.3 * k, 1.5 * len(chosen) + 0.5), squeeze=False)
    for row, latent in enumerate(chosen):
        images = loader([str(s) for s in ids[row]])
        for col, ax in enumerate(axes[row]):
            ax.imshow(np.asarray(rgb_image(images[col])))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"{acts[row, col]:.2f}", fontsize=7)
        axes[row, 0].set_ylabel(f"latent {latent}\n{labels[latent]}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def caption_figures(rows: Any, kit: Any) -> list[Path]:
    """Per captioned encoder: top words per ROI as bars, and a brain map of the mapped word's share."""
    paths: list[Path] = []
    for encoder, part in rows.groupby("encoder", sort=False):
        paths += encoder_caption_figures(kit, str(encoder), str(sorted(part["cell"])[0]))
    return paths


def encoder_caption_figures(kit: Any, encoder: str, key: str) -> list[Path]:
    arrays, attrs = cell_arrays(kit, key)
    subject, response = attrs["cell"]["subject"], attrs["cell"]["response_path"]
    safe, word = kit.file_label(encoder), str(arrays["word"][0])
    rois = [str(r["roi"]) for r in attrs["rois"] if f"words_{r['roi']}" in arrays]
    paths = [kit.draw(
        f"captions_words_{safe}.png", (key, "words"),
        lambda p: plot_roi_words(p, {roi: (arrays[f"words_{roi}"], arrays[f"counts_{roi}"]) for roi in rois},
                                 f"{encoder}: over-represented caption words per ROI, subject {subject}"),
        f"Words of the captions retrieved for each ROI's units ({encoder} encoding weights projected onto the caption "
        f"bank), subject {subject}: bars count the units naming each word (held by at least half of a unit's "
        "captions), words ranked by their lift over all captioned units (the 'all' panel: over random weight "
        "vectors), highest on top.")]
    if word:
        paths += kit.draw_surface(
            f"captions_word_{kit.file_label(word)}_{safe}.png", (key, word),
            lambda p: kit.surface_values(p, arrays["word_share"], response, vmin=0.0, vmax=1.0,
                                         colorbar_label=f"share of captions with '{word}'",
                                         title=f"{encoder}: '{word}' in each vertex's captions, subject {subject}"),
            f"For each captioned vertex of subject {subject}, the share of its retrieved captions that contain "
            f"'{word}'; vertices not captioned (test r below the threshold) are not coloured.")
    return paths


def plot_roi_words(path: Path, words: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> Path:
    """One horizontal bar chart of top words per ROI."""
    import matplotlib.pyplot as plt

    n = len(words)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax, (roi, (names, counts)) in zip(axes.flat, words.items()):
        ax.barh(np.arange(len(names))[::-1], counts, color="tab:blue")
        ax.set_yticks(np.arange(len(names))[::-1], [str(w) for w in names], fontsize=8)
        ax.set_title(roi, fontsize=10)
        ax.set_xlabel("units naming the word (ranked by lift)", fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_match_distributions(path: Path, arrays: dict[str, np.ndarray], title: str) -> Path:
    """Histograms of matched-pair similarity against the null, one panel per similarity (Hungarian pairs)."""
    import matplotlib.pyplot as plt

    kinds = [k for k in ("activation", "decoder") if f"similarity_{k}_hungarian" in arrays]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.2), squeeze=False)
    threshold = float(arrays["threshold"][0])
    for ax, kind in zip(axes[0], kinds):
        observed, null = arrays[f"similarity_{kind}_hungarian"], arrays[f"null_similarity_{kind}_hungarian"]
        bins = np.linspace(min(observed.min(), null.min(), 0.0), 1.0, 30)
        ax.hist(null, bins=bins, alpha=0.6, color="grey", label="null")
        ax.hist(observed, bins=bins, alpha=0.7, color="tab:blue", label="matched pairs")
        ax.axvline(threshold, color="black", ls="--", lw=1)
        ax.set_xlabel("activation correlation" if kind == "activation" else "decoder cosine")
        ax.set_ylabel("latent pairs")
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
