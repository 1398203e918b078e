"""Load a lookm cache into a transformers DynamicCache and continue generation from it."""
import h5py
import numpy as np
import torch
from transformers import DynamicCache


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
    keep only their window as the model's own cache does: `load_cache(path, config=model.config)`."""
    import hdf5plugin  # noqa: F401  (zstd-compressed caches)
    positions = []
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != "lookm-kv-cache":
            raise ValueError(f"{path}: not a lookm cache (format = {f.attrs.get('format')!r})")
        unknown = set(filter(None, str(f.attrs.get("extensions", "")).split(","))) - {"next-position", "sliding-window"}
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
        for i in range(layers):
            g = f[f"layers/{i}"]
            k = _tensor(g["key"], dtype)[None].to(device)
            v = _tensor(g["value"], dtype)[None].to(device)
            cache.update(k, v, i)
            if i in windowed:
                # The model's own cache has seen every prompt token and holds the window of them.
                cache.layers[i].cumulative_length = seq_len
            positions.append(g["position"][...])
        info = {"seq_len": seq_len, "next_position": int(f.attrs.get("next_position", seq_len)), "position": positions,
                "method": f.attrs["method"]}
    return cache, info


@torch.no_grad()
def greedy_continue(model, cache, first_token, next_position, steps):
    """Greedy decoding from a (possibly compressed) cache: `first_token` is the token the prefill
    chose; rotary positions continue at `next_position` (`info["next_position"]` of `load_cache`)
    whatever the cache keeps. Returns (tokens, the first step's logits)."""
    token = torch.as_tensor(first_token).view(1, 1)
    tokens, first_logits = [], None
    for step in range(steps):
        out = model(input_ids=token, cache=cache, position_ids=torch.tensor([[next_position + step]]), use_cache=True)
        logits = out.logits[0, -1]
        if first_logits is None:
            first_logits = logits.float().clone()
        token = logits.argmax().view(1, 1)
        tokens.append(int(token))
    return tokens, first_logits
