"""Where models and text come from: the one place for model and corpus plumbing.

`models`: the model registry (`smollm2-135m`, the embedded model), Hugging Face names
and local paths, and the conversion cache. `corpora`: corpus sources (the default
stories shipped in `data/`, text files, `hf:` datasets), cutting text into sequences,
and deterministic train / validation / test splits.
"""
