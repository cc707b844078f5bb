"""The code vocabulary: special tokens, BPE training, loading.

``load_tokenizer(dir)`` returns a ``tokenizers.Tokenizer`` that never matches special
tokens inside ordinary text; ``tokenizer_sha256(dir)`` identifies it in manifests.
"""

from llmfoundry_lite.tokenizer.io import load_manifest, load_tokenizer, text_safe, tokenizer_sha256

__all__ = ["load_manifest", "load_tokenizer", "text_safe", "tokenizer_sha256"]
