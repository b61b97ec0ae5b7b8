"""Where models and text come from: the one place for model and corpus plumbing.

`models`: the model registry (`smollm2-135m`, the default embedded model, and
`gemma3-270m`), Hugging Face names and local paths, and the conversion cache.
`tiny`: tiny random GPT-2, Llama and Gemma 3 models that tests load as local paths.
`corpora`: corpus sources (the default stories shipped in `data/`, text files, `hf:`
datasets), cutting text into sequences, and deterministic train / validation / test
splits.
"""
