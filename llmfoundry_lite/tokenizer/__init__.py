"""The code vocabulary: special tokens, BPE training, loading."""
