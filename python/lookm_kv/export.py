"""Export a prompt's per-layer KV cache, attention scores and queries as a lookm dump.

One prefill of the model, with a forward hook on every attention module that reduces the
attention it just computed (column sums = `attn_score`, the last rows = `window_attn`) and writes
them at once, so no two layers' attention matrices are ever held together. Queries are rebuilt from
the module's own `q_proj` and rotary embedding (after rotary, as the kernel sees them); when the
model runs sdpa/flash attention (no weights), scores come from those queries exactly.
"""
import sys

import h5py
import numpy as np
import torch

CHUNK_BYTES = 256 << 10


def _attention_modules(model):
    mods = [m for m in model.modules() if hasattr(m, "q_proj") and hasattr(m, "k_proj") and hasattr(m, "layer_idx")]
    if not mods:
        raise ValueError("no attention modules with q_proj/k_proj/layer_idx found in this model")
    return sorted(mods, key=lambda m: m.layer_idx)


def _projected(mod, kwargs, proj, norm, rotary=True):
    """One projection of the module's input as its forward computes it, [heads, tokens, head_dim]:
    the linear map, the per-head norm where the family has one, the rotary embedding for queries
    and keys."""
    h = kwargs["hidden_states"]
    x = getattr(mod, proj)(h).view(h.shape[0], h.shape[1], -1, mod.head_dim)
    if hasattr(mod, norm):
        x = getattr(mod, norm)(x)
    x = x.transpose(1, 2)
    if rotary:
        cos, sin = kwargs["position_embeddings"]
        x, _ = sys.modules[type(mod).__module__].apply_rotary_pos_emb(x, x, cos, sin)
    return x[0]


def _queries(mod, kwargs):
    """Queries after the rotary embedding, [heads, tokens, head_dim], from the module's inputs."""
    return _projected(mod, kwargs, "q_proj", "q_norm")


def _keys_values(mod, kwargs):
    """Keys (after the rotary embedding) and values of every prompt position, [kv_heads, tokens,
    head_dim], recomputed from the module's inputs: a sliding-window layer's cache keeps only the
    last window - 1 of them."""
    return _projected(mod, kwargs, "k_proj", "k_norm"), _projected(mod, kwargs, "v_proj", "v_norm", rotary=False)


def _allowed(mask, L):
    """The [L, L] boolean "query may attend to key" of the mask the module was given, or None
    (no mask: plain causal attention, as sdpa runs it)."""
    if mask is None or not torch.is_tensor(mask):
        return None
    m = mask[0, 0] if mask.dim() == 4 else mask
    m = m[-L:, -L:]
    return m if m.dtype == torch.bool else m > torch.finfo(m.dtype).min / 2


def _stored(t):
    """A tensor as the format stores it: float16/float32 as is, bfloat16 as raw uint16 bits."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16), True
    if t.dtype in (torch.float16, torch.float32):
        return t.numpy(), False
    return t.float().numpy(), False


def _write(group, name, tensor):
    data, bf16 = _stored(tensor)
    kw = {}
    if data.ndim == 3 and data.shape[1] > 0:
        # One head by a block of tokens of at least 256 KiB, split evenly (what lookm reads fastest).
        rows, min_rows = data.shape[1], max(1, -(-CHUNK_BYTES // (data.shape[2] * data.itemsize)))
        block = rows if rows <= min_rows else -(-rows // (rows // min_rows))
        kw["chunks"] = (1, block, data.shape[2])
    ds = group.create_dataset(name, data=data, **kw)
    if bf16:
        ds.attrs["dtype"] = "bfloat16"


def _causal_scores(q, k, scale, window, allowed=None):
    """Accumulated attention (column sums) and the last `window` rows, from queries [H, L, D] and
    keys [KV, L, D], in float32 blocks of query rows. `allowed` is the model's own mask (sliding
    windows, image tokens that see each other both ways as in Gemma3); None means causal."""
    H, L, _ = q.shape
    group = H // k.shape[0]
    k = k.float().repeat_interleave(group, dim=0)
    q = q.float()
    sums = torch.zeros(H, L, dtype=torch.float64)
    rows = torch.zeros(H, window, L, dtype=torch.float32)
    for start in range(0, L, 256):
        stop = min(L, start + 256)
        logits = q[:, start:stop] @ k.transpose(1, 2) * scale
        pos = torch.arange(start, stop)[:, None]
        hidden = torch.arange(L)[None, :] > pos if allowed is None else ~allowed[start:stop]
        logits = logits.masked_fill(hidden, float("-inf"))
        p = torch.softmax(logits, dim=-1)
        sums += p.double().sum(dim=1)
        first = L - window
        if stop > first:
            lo = max(start, first)
            rows[:, lo - first:stop - first] = p[:, lo - start:]
    return sums.float(), rows


def _next_position(model, L):
    """The rotary position `generate` gives the token after the prompt: `L`, except for M-RoPE
    models (Qwen2-VL, Qwen2.5-VL), whose image tokens advance positions by less than one per token:
    there it is `L + rope_deltas`, which the model computed in the prefill."""
    for owner in (getattr(model, "model", None), model):
        deltas = getattr(owner, "rope_deltas", None)
        if deltas is not None:
            return L + int(torch.as_tensor(deltas).reshape(-1)[0])
    return L


def _output_cache(out):
    """The prefill's cache (transformers 5 calls it `cache`; `past_key_values` is deprecated)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


@torch.no_grad()
def export_dump(model, path, input_ids, pixel_values=None, *, image_token_id=None, window=32, probes=4,
                store_query=False, model_name=None, **model_kwargs):
    """Runs the prefill of `input_ids` (1 x L, image tokens already expanded, as processors do)
    and writes a lookm dump to `path`. Every other output of the model's processor passes through
    `model_kwargs` as it comes (`image_grid_thw` and `mm_token_type_ids` for Qwen2-VL, `image_sizes`
    for LLaVA-NeXT, ...), so `export_dump(model, path, **processor(...))` works. Returns the greedy
    tokens of the probe steps (empty when `probes=0`)."""
    input_ids = torch.as_tensor(input_ids)
    assert input_ids.shape[0] == 1, "one prompt at a time"
    L = input_ids.shape[1]
    cfg = model.config
    text_cfg = getattr(cfg, "text_config", cfg)
    if image_token_id is None:
        image_token_id = getattr(cfg, "image_token_id", getattr(cfg, "image_token_index", None))
    modality = (input_ids[0] == image_token_id).numpy().astype(np.uint8) if image_token_id is not None else np.zeros(L, np.uint8)
    segment = np.full(L, -1, dtype=np.int32)
    starts = np.flatnonzero(np.diff(np.concatenate([[0], modality])) == 1)
    for i, s in enumerate(starts):
        e = s
        while e < L and modality[e] == 1:
            e += 1
        segment[s:e] = i
    ids = input_ids[0].numpy().astype(np.int64)
    ids[modality == 1] = -1
    mods = _attention_modules(model)
    window = min(window, L)

    with h5py.File(path, "w") as f:
        H = text_cfg.num_attention_heads
        KV = getattr(text_cfg, "num_key_value_heads", None) or H
        D = mods[0].head_dim
        f.attrs.update(format="lookm-kv-dump", format_version=1, num_layers=len(mods), num_heads=H, num_kv_heads=KV,
                       head_dim=D, seq_len=L, attn_scale=float(mods[0].scaling),
                       model=model_name or getattr(cfg, "_name_or_path", "") or type(model).__name__)
        f["tokens/modality"] = modality
        f["tokens/segment"] = segment
        f["tokens/ids"] = ids
        recorder = _Recorder(f.create_group("layers"), L, window, store_query)
        handles = [m.register_forward_hook(recorder.hook, with_kwargs=True) for m in mods]
        try:
            out = model(input_ids=input_ids, pixel_values=pixel_values, use_cache=True, **model_kwargs)
            cache = _output_cache(out)
            next_position = _next_position(model, L)
            # Format version 2 with the extensions this dump needs (docs/format.md): readers that
            # do not know one refuse the file rather than misread it.
            extensions = (["next-position"] if next_position != L else []) + (["sliding-window"] if recorder.full_kv else [])
            if extensions:
                f.attrs.update(format_version=2, extensions=",".join(sorted(extensions)))
            if next_position != L:
                f.attrs["next_position"] = next_position
            for m in mods:
                recorder.write_keys_values(m.layer_idx, cache)
            tokens = []
            if probes > 0:
                recorder.probing = True
                token = out.logits[0, -1].argmax()
                for step in range(probes):
                    tokens.append(int(token))
                    o = model(input_ids=token.view(1, 1), cache=cache, position_ids=torch.tensor([[next_position + step]]),
                              use_cache=True)
                    token = o.logits[0, -1].argmax()
                f["probe/position"] = np.arange(next_position, next_position + probes, dtype=np.int64)
                for m in mods:
                    recorder.write_probe_queries(m.layer_idx)
        finally:
            for h in handles:
                h.remove()
    return tokens


class _Recorder:
    """What the attention modules' forward hook records during one export: each layer's scores
    (and queries) as the prefill computes them, the full keys and values of sliding-window layers,
    and then the query of every probe step."""

    def __init__(self, layers, L, window, store_query):
        self.layers = layers  # the dump's /layers group
        self.L = L
        self.window = window
        self.store_query = store_query
        self.probing = False
        self.probe_q = {}
        self.full_kv = {}  # layer -> (keys, values) of every prompt position, for sliding-window layers

    def hook(self, mod, args, kwargs, out):
        q = _queries(mod, kwargs)
        if self.probing:
            self.probe_q.setdefault(mod.layer_idx, []).append(q[:, -1:])
        else:
            self._prefill(mod, kwargs, out, q)
        return (out[0], None)   # drop the weights: the model keeps no attention matrices

    def _prefill(self, mod, kwargs, out, q):
        i, L, window = mod.layer_idx, self.L, self.window
        g = self.layers.require_group(str(i))
        sliding = getattr(mod, "sliding_window", None)
        if sliding is not None and sliding - 1 < L:
            # The cache will hold only the last sliding - 1 positions: record every position's
            # keys and values (as the layer computed them) and the window (sliding-window).
            self.full_kv[i] = _keys_values(mod, kwargs)
            g.attrs["sliding_window"] = int(sliding)
        weights = out[1] if len(out) > 1 else None
        if weights is not None:
            w = weights[0]
            g["attn_score"] = w.double().sum(dim=1).float().numpy()
            g["window_attn"] = w[:, -window:].float().numpy()
        else:
            if i in self.full_kv:
                keys = self.full_kv[i][0]
            else:
                cache = kwargs.get("cache") or kwargs.get("past_key_values")
                keys = cache.layers[i].keys[0] if hasattr(cache, "layers") else cache[i][0][0]
            sums, rows = _causal_scores(q, keys[:, :L], mod.scaling, window, _allowed(kwargs.get("attention_mask"), L))
            g["attn_score"] = sums.numpy()
            g["window_attn"] = rows.numpy()
        if self.store_query:
            _write(g, "query", q)

    def write_keys_values(self, i, cache):
        """Layer i's prompt keys and values from the model's cache (every position for a
        sliding-window layer, checked against what the model kept)."""
        layer = cache.layers[i] if hasattr(cache, "layers") else None
        keys = layer.keys if layer is not None else cache[i][0]
        values = layer.values if layer is not None else cache[i][1]
        if i in self.full_kv:
            full_k, full_v = self.full_kv[i]
            held = keys.shape[2]
            if not (torch.equal(full_k[:, -held:], keys[0]) and torch.equal(full_v[:, -held:], values[0])):
                raise RuntimeError(f"layer {i}: recomputed keys/values differ from the model's sliding-window cache; "
                                   "this model family computes them differently, which the exporter does not support")
            keys, values = full_k[None], full_v[None]
        _write(self.layers[str(i)], "key", keys[0, :, :self.L])
        _write(self.layers[str(i)], "value", values[0, :, :self.L])

    def write_probe_queries(self, i):
        _write(self.layers[str(i)], "probe_query", torch.cat(self.probe_q[i], dim=1))
