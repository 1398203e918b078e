"""Load a lookm cache into a transformers DynamicCache and continue generation from it."""
from contextlib import contextmanager

import h5py
import numpy as np
import torch
from transformers import DynamicCache

from .quant import dequantise, element_type


def _tensor(ds, dtype=None):
    x = ds[...]
    if ds.attrs.get("dtype") == "bfloat16":
        t = torch.from_numpy(x.view(np.int16)).view(torch.bfloat16)
    else:
        t = torch.from_numpy(x)
    return t if dtype is None else t.to(dtype)


def load_cache(path, dtype=None, device="cpu", config=None):
    """Returns (cache, info): a DynamicCache with every layer's kept keys and values
    ([1, kv_heads, kept, head_dim], in the cache's element type unless `dtype`), and a dict with
    `seq_len` (the original prompt length), `next_position` (the rotary position of the token
    after the prompt: `seq_len`, or what the dump recorded for M-RoPE models such as Qwen2-VL) and
    `position` (per layer, the original positions of the slots).

    A cache with sliding-window layers (Gemma3) needs the model's `config`, so that those layers
    keep only their window as the model's own cache does: `load_cache(path, config=model.config)`.

    A cache whose kv heads keep different counts (docs/format.md `ragged-heads`) is padded per layer
    to its largest head with zero rows (position -1), and `info["padding"]` holds, per layer, a
    `[kv_heads, kept]` bool tensor marking them (None for a plain layer; `info["padding"]` is None
    when no layer is ragged). Decode under `ragged_attention(model, info["padding"])` (as
    `greedy_continue` does) so that the padding gets no attention: each head then attends to
    exactly its own slots.

    A quantised cache (`quantised-kv`, `lookm compress --quant`) is dequantised by the recipe of
    docs/format.md (`lookm_kv.quant.dequantise`): the keys and values a model reads back, in the
    element type."""
    import hdf5plugin  # noqa: F401  (zstd-compressed caches)
    positions = []
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != "lookm-kv-cache":
            raise ValueError(f"{path}: not a lookm cache (format = {f.attrs.get('format')!r})")
        unknown = set(filter(None, str(f.attrs.get("extensions", "")).split(","))) - {
            "next-position", "sliding-window", "ragged-heads", "quantised-kv"}
        if int(f.attrs["format_version"]) > 2 or unknown:
            raise ValueError(f"{path}: format_version {f.attrs['format_version']} with extensions {sorted(unknown)} is not "
                             "supported by this loader; update lookm_kv")
        seq_len = int(f.attrs["seq_len"])
        layers = int(f.attrs["num_layers"])
        windowed = [i for i in range(layers) if "sliding_window" in f[f"layers/{i}"].attrs]
        if windowed and config is None:
            raise ValueError(f"{path}: layers {windowed} have sliding windows; pass config=model.config so that the "
                             "cache keeps them as the model does")
        cache = DynamicCache(config=config) if config is not None else DynamicCache()
        padding = []
        for i in range(layers):
            g = f[f"layers/{i}"]
            if "heads" in g:
                k, v, position, pad = _ragged(g, int(f.attrs["num_kv_heads"]), dtype, f.attrs)
            else:
                k, v = _kv(g, dtype, f.attrs)
                position, pad = g["position"][...], None
            cache.update(k[None].to(device), v[None].to(device), i)
            if i in windowed:
                # The model's own cache has seen every prompt token and holds the window of them.
                cache.layers[i].cumulative_length = seq_len
            positions.append(position)
            padding.append(None if pad is None else pad.to(device))
        info = {"seq_len": seq_len, "next_position": int(f.attrs.get("next_position", seq_len)), "position": positions,
                "method": f.attrs["method"], "padding": padding if any(p is not None for p in padding) else None}
    return cache, info


def _kv(g, dtype, attrs):
    """Keys and values of a layer group (or of one head's group), dequantised if need be."""
    if "key_codes" not in g:
        return _tensor(g["key"], dtype), _tensor(g["value"], dtype)
    k, v = dequantise(g, attrs)
    kind = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(element_type(g["key_scale"]), torch.float32)
    # Exact: the dequantised values are values of the element type.
    k, v = torch.from_numpy(k).to(kind), torch.from_numpy(v).to(kind)
    return (k, v) if dtype is None else (k.to(dtype), v.to(dtype))


def _ragged(group, kv_heads, dtype, attrs):
    """A ragged layer's heads padded to the largest: keys, values, positions (-1 in the padding)
    and the padding mask."""
    heads = [group[f"heads/{h}"] for h in range(kv_heads)]
    counts = [h["position"].shape[1] for h in heads]
    K = max(counts)
    each = [_kv(h, dtype, attrs) for h in heads]
    k = torch.zeros((kv_heads, K, each[0][0].shape[-1]), dtype=each[0][0].dtype)
    v = torch.zeros_like(k)
    position = np.full((kv_heads, K), -1, dtype=np.int32)
    pad = torch.ones((kv_heads, K), dtype=torch.bool)
    for h, (head, n) in enumerate(zip(heads, counts)):
        k[h, :n] = each[h][0][0]
        v[h, :n] = each[h][1][0]
        position[h, :n] = head["position"][0]
        pad[h, :n] = False
    return k, v, position, pad


@contextmanager
def ragged_attention(model, padding):
    """While active, every attention layer of `model` with padding (from `load_cache`'s
    `info["padding"]`) masks its padded slots out of the softmax for each head, and keeps new
    tokens causal among themselves; layers without padding are left alone."""
    from .export import _attention_modules
    handles = []

    def hook(mod, args, kwargs):
        pad = padding[mod.layer_idx]
        cache = kwargs.get("cache") or kwargs.get("past_key_values")
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        q, past = hidden.shape[1], cache.layers[mod.layer_idx].get_seq_length()
        heads = mod.config.num_attention_heads
        masked = torch.zeros((heads, q, past + q), dtype=torch.bool, device=hidden.device)
        group = heads // pad.shape[0]
        masked[:, :, :pad.shape[1]] |= pad.repeat_interleave(group, dim=0)[:, None, :]
        masked[:, :, past:] |= torch.ones((q, q), dtype=torch.bool, device=hidden.device).triu(1)
        mask = torch.zeros(masked.shape, dtype=hidden.dtype, device=hidden.device)
        kwargs["attention_mask"] = mask.masked_fill(masked, torch.finfo(hidden.dtype).min)[None]
        return args, kwargs

    try:
        for m in _attention_modules(model):
            if padding is not None and padding[m.layer_idx] is not None:
                handles.append(m.register_forward_pre_hook(hook, with_kwargs=True))
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def greedy_continue(model, cache, first_token, next_position, steps, padding=None):
    """Greedy decoding from a (possibly compressed) cache: `first_token` is the token the prefill
    chose; rotary positions continue at `next_position` (`info["next_position"]` of `load_cache`)
    whatever the cache keeps; `padding` is `info["padding"]` of a ragged cache. Returns (tokens,
    the first step's logits)."""
    token = torch.as_tensor(first_token).view(1, 1)
    tokens, first_logits = [], None
    with ragged_attention(model, padding):
        for step in range(steps):
            out = model(input_ids=token, cache=cache, position_ids=torch.tensor([[next_position + step]]),
                        use_cache=True)
            logits = out.logits[0, -1]
            if first_logits is None:
                first_logits = logits.float().clone()
            token = logits.argmax().view(1, 1)
            tokens.append(int(token))
    return tokens, first_logits
