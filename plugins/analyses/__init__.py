"""Built-in analyses of a sweep, registered exactly as a third-party analysis would be: encoding and decoding
heads, metrics (also on brain RDMs a dataset gives), reconstruction, generation and new-subject adaptation."""

from brain_workbench.sdk import hookimpl

ANALYSES = {
    "encoding": ("encoding:EncodingAnalysis", "fit encode heads features → responses; Pearson r per unit"),
    "metric": ("metric:MetricAnalysis", "compare each layer with each ROI without fitting (RSA, CKA, ...)"),
    "decoding": ("decoding:DecodingAnalysis", "fit decode heads responses → features; retrieval and identification"),
    "reconstruction": ("reconstruction:ReconstructionAnalysis", "decode an image codec's latents; score the images"),
    "generation": ("generation:GenerationAnalysis", "decoded embeddings through an image generator; score the images"),
    "adaptation": ("adaptation:AdaptationAnalysis", "models scored on a new subject after k of its sessions"),
    "compare": ("compare:CompareAnalysis", "every layer of one encoder against every layer of another (or ROIs)"),
    "roi-identification": ("identification:IdentificationAnalysis",
                           "leave-one-subject-out nearest-centroid identification of ROIs from their RDMs"),
    "concepts": ("concepts.analysis:ConceptsAnalysis", "SAE latents against units: best latent per unit, labels, top stimuli"),
    "captions": ("concepts.voxel_captions:CaptionsAnalysis", "caption units by retrieval from their projected weights"),
    "latent-match": ("concepts.latent_match:LatentMatchAnalysis", "are two SAEs' latents the same? matching, SVCCA, RSA"),
    "preferred": ("preferred:PreferredAnalysis", "rank an image bank by a fitted encoding readout's predicted response"),
    "synthesis": ("synthesis:SynthesisAnalysis", "synthesize images that maximise a fitted encoding readout's target"),
}


@hookimpl
def register_analyses(register):
    for name, (target, description) in ANALYSES.items():
        register(name, f"brain_workbench_plugins.analyses.{target}", description=description)


@hookimpl
def register_commands(app):
    from brain_workbench_plugins.analyses.concepts.cli import concepts_app

    app.add_typer(concepts_app, name="concepts")
