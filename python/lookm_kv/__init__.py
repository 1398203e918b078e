"""Python side of lookm: export KV dumps from a transformers MLLM, load lookm caches back.

    from lookm_kv import export_dump, load_cache, greedy_continue

The file formats are docs/format.md's; lookm itself does the compression (`lookm compress`).
"""
from .export import export_dump
from .load import greedy_continue, load_cache, ragged_attention

__all__ = ["export_dump", "load_cache", "greedy_continue", "ragged_attention"]
