"""The SDK of analysis plugins: the contract and the helpers the built-in analyses use.

An analysis plugin imports from here (and :mod:`brain_workbench.sdk`) only::

    from brain_workbench.sdk.analysis import Analysis, Cell, CellResult, PlanContext
"""

from __future__ import annotations

from typing import Any

from brain_workbench.analysis.adaptation import fit_model, prepare_adaptation, score_sessions
from brain_workbench.analysis.contract import (
    Analysis,
    Cell,
    CellResult,
    DatasetInfo,
    EncoderInfo,
    FeatureJob,
    ImageJob,
    PlanContext,
    RecordingInfo,
    ReportSection,
    TextTable,
    head_direction,
    plain,
    source_digest,
    table_labels,
)
from brain_workbench.analysis.folds import fold_count, inner_labels, test_mask
from brain_workbench.analysis.measure import measured
from brain_workbench.analysis.progress import step_progress
from brain_workbench.analysis.recordings import (
    CV,
    Preparation,
    prepare_fold,
    prepare_recording,
    prepared_recording,
    select_rois,
)
from brain_workbench.analysis.summaries import best_layer_table, best_layers
from brain_workbench.analysis.timecourse import timecourse_score, timecourse_table
from brain_workbench.numerics.ceilings import given_rdm_noise_ceilings
from brain_workbench.numerics.decoding import check_k_way, decoding_scores
from brain_workbench.numerics.scoring import (
    normalize_by_ceiling,
    pearson_per_unit,
    r2_per_unit,
    similarity_matrix,
)
from brain_workbench.numerics.stats import (
    CONSTANT_RTOL,
    bootstrap_ci,
    bootstrap_rdm_ci,
    bootstrap_rdm_ci_fast,
    bootstrap_stimuli,
    permutation_pvalue,
    permutation_test,
    permutation_test_pairwise,
    permutation_test_rdms,
    relative_spread,
)
from brain_workbench.store import Store, load_rdms, load_recording, safe_name
from brain_workbench.store.features import load_features
from brain_workbench.store.images import read_images, rgb_image
from brain_workbench.store.paths import encoder_key, feature_path, manifest_path, result_path, seen_images_key
from brain_workbench.types import LayerInfo, Recording, StimulusSet, WorkbenchError, digest, resolve_layers


def build(kind: str, name: str, **options: Any) -> Any:
    """Build a registered plugin of any kind by name (a head, metric, codec, generator, image metric)."""
    import brain_workbench

    return brain_workbench.get_registry().create(kind, name, **options)


__all__ = [
    "step_progress",
    "CONSTANT_RTOL", "relative_spread", "given_rdm_noise_ceilings", "permutation_test_rdms", "bootstrap_rdm_ci_fast",
    "Analysis", "CV", "Cell", "CellResult", "bootstrap_stimuli", "encoder_key", "DatasetInfo", "EncoderInfo", "FeatureJob",
    "ImageJob", "LayerInfo",
    "PlanContext", "Preparation", "Recording", "RecordingInfo", "ReportSection", "StimulusSet", "Store", "TextTable",
    "WorkbenchError", "bootstrap_ci", "bootstrap_rdm_ci", "build", "decoding_scores", "digest", "feature_path",
    "fit_model", "fold_count", "inner_labels", "load_features", "load_rdms", "load_recording", "measured",
    "normalize_by_ceiling", "pearson_per_unit", "permutation_pvalue", "permutation_test", "permutation_test_pairwise",
    "plain", "prepare_adaptation", "prepare_fold", "prepare_recording", "prepared_recording", "r2_per_unit",
    "read_images", "resolve_layers", "rgb_image", "result_path", "safe_name", "score_sessions", "select_rois",
    "seen_images_key", "similarity_matrix", "source_digest", "table_labels", "test_mask", "head_direction",
    "manifest_path", "given_rdm_noise_ceilings", "best_layer_table", "best_layers",
    "check_k_way", "timecourse_score", "timecourse_table",
]
