"""The decoder (``transformer``), its Composer wrapper, generation, loading and HF export.

Import submodules directly; this package file stays free of torch so configs load fast.
"""
