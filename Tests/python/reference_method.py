"""An independent, plain NumPy reading of docs/method.md sections 1-4 (the paper variant).

Written from the spec, not from lookm's Swift code, so that the two can check each other. Float64
throughout; where two candidates are within rounding of each other (a pivot's top-2 cosines, a
weighted filter's mean), the spec allows either answer, and `Ambiguity` records where that is.
"""
import numpy as np

TEXT = 0


def split_budget(L, hh_ratio=0.1, recent_ratio=0.1, budget=None, keep=None):
    if budget is not None:
        keep = int(L * budget)
    if keep is not None:
        recent = keep // 2
        return keep - recent, recent
    return int(L * hh_ratio), int(L * recent_ratio)



def pyramid_keep(L, layers, n, beta=20, window=64):
    """Tokens each layer keeps under PyramidKV (docs/method.md section 8), as kvpress 0.5.5's
    PyramidKVPress.get_layer_budget computes them: `n` is the uniform keep (L * budget, unrounded),
    Python floats and Python's round (half to even)."""
    capacity = window + n
    least = (capacity - window) / beta
    most = (capacity - window) * 2 - least
    if most >= L - window:
        most = L - window
        least = (capacity - window) * 2 - most
    if not (L >= most >= least >= window):
        return [max(1, round(n))] * layers
    steps = (most - least) / (layers - 1) if layers > 1 else 0.0
    return [round(most - i * steps) for i in range(layers)]

def top(values, k, candidates):
    """The k candidates with the largest values, ties to the lower position."""
    order = sorted(candidates, key=lambda t: (-float(values[t]), t))
    return order[:k]


def aggregate(per_query_head, how):
    x = np.asarray(per_query_head, dtype=np.float64)
    if how == "mean":
        return x.mean(axis=0)
    if how == "sum":
        return x.sum(axis=0)
    return x.max(axis=0)


def pool(x, k):
    """Average pooling of odd width k, zero padding counted (every output divided by k)."""
    half = k // 2
    padded = np.concatenate([np.zeros(half), x, np.zeros(half)])
    return np.array([padded[i:i + k].sum() / k for i in range(len(x))])


def softmax_rows(q, k, scale, first_row):
    """Causal softmax rows first_row..L-1 of q k^T * scale, float64."""
    L = k.shape[0]
    logits = q[first_row:] @ k.T * scale
    rows = np.zeros_like(logits)
    for i, qi in enumerate(range(first_row, L)):
        x = logits[i, :qi + 1]
        e = np.exp(x - x.max())
        rows[i, :qi + 1] = e / e.sum()
    return rows


def select(selector, layer, g, modality, hh, recent, group, gqa_agg="mean", window=32, kernel=7, sinks=4, scale=None):
    """Kept positions (ascending) of kv head g. `layer` is a dict of float64 arrays."""
    L = len(modality)
    old = L - recent
    recent_part = list(range(old, L))
    if selector == "full":
        return list(range(L))
    if selector == "streaming":
        n = hh + recent
        s = min(sinks, n)
        return list(range(s)) + list(range(L - (n - s), L))
    rank = ranking(selector, layer, g, modality, recent, group, gqa_agg, window, kernel, scale)
    if rank is None:
        raise ValueError(selector)
    # Higher tier first (text-prior's text), then higher score, ties to the lower position.
    chosen = sorted(range(old), key=lambda t: (-rank[t][0], -rank[t][1], t))[:hh]
    return sorted(chosen) + recent_part


def ranking(selector, layer, g, modality, recent, group, gqa_agg="mean", window=32, kernel=7, scale=None):
    """How `select` ranks kv head g's old positions, as (tier, score) pairs: higher first, ties to
    the lower position (docs/method.md section 9). None for selectors that do not rank."""
    L = len(modality)
    old = L - recent
    heads = range(g * group, (g + 1) * group)
    if selector in ("text-prior", "h2o"):
        scores = aggregate([layer["attn_score"][h] for h in heads], gqa_agg)
        tiers = [int(selector == "text-prior" and modality[t] == TEXT) for t in range(old)]
        return [(tiers[t], float(scores[t])) for t in range(old)]
    if selector == "snapkv":
        w = min(window, L)
        pooled = []
        for h in heads:
            if "window_attn" in layer and layer["window_attn"].shape[1] >= w:
                rows = layer["window_attn"][h][-w:]
            else:
                rows = softmax_rows(layer["query"][h], layer["key"][g], scale, L - w)
            pooled.append(pool(rows[:, :old].sum(axis=0), kernel))
        return [(0, float(x)) for x in aggregate(pooled, gqa_agg)]
    if selector == "knorm":
        return [(0, -float(x)) for x in np.linalg.norm(layer["key"][g][:old], axis=1)]
    if selector == "mixkv":
        return [(0, float(x)) for x in mixkv_scores(layer, g, modality, recent, group, gqa_agg, window, kernel, scale)]
    return None


def mixkv_scores(layer, g, modality, recent, group, gqa_agg, window, kernel, scale):
    """MixKV's blended score of kv head g's old positions (docs/method.md section 11): importance
    (SnapKV's pooled window attention plus the min-max value norm) and diversity (min-max distance
    from the mean normalised key), weighted by the head's redundancy (mean pairwise key cosine)."""
    L = len(modality)
    old = L - recent
    if old <= 0:
        return []
    attn = np.array([s for _, s in ranking("snapkv", layer, g, modality, recent, group, gqa_agg, window, kernel,
                                           scale)])
    k, v = layer["key"][g], layer["value"][g]
    kn = k / np.maximum(np.linalg.norm(k, axis=1, keepdims=True), 1e-12)
    mean = kn.sum(axis=0) / L
    redundancy = (L * (mean @ mean) - 1) / (L - 1)
    att_mean = attn.mean()

    def scaled(x, eps):
        span = x.max() - x.min() + eps
        unit = (x - x.min()) / span if span > 0 else np.zeros_like(x)
        return unit * (att_mean / (unit.mean() + 1e-8))

    diversity = scaled(-(kn[:old] @ mean), 1e-8)
    value_term = scaled(np.linalg.norm(v[:old], axis=1), 0.0)
    return redundancy * diversity + (1 - redundancy) * (attn + value_term)


def adakv_heavy_hitters(rankings, hh, recent, floor=0.2):
    """Ada-KV's heavy hitters per kv head (docs/method.md section 9): every head keeps its own top
    `safe`, the rest of the layer's heads * hh go to the best remaining (tier, score) of all heads,
    ties to the lower head, then the lower position."""
    n = hh + recent
    protected = max(1, int(n * floor)) if floor > 0 and n > 0 else int(n * floor)
    safe = min(hh, max(0, protected - recent))
    counts = [safe] * len(rankings)
    pool_ = []
    for g, r in enumerate(rankings):
        order = sorted(range(len(r)), key=lambda t: (-r[t][0], -r[t][1], t))
        pool_ += [(-r[t][0], -r[t][1], g, t) for t in order[safe:]]
    for _, _, g, _ in sorted(pool_)[:len(rankings) * (hh - safe)]:
        counts[g] += 1
    return counts


class Ambiguity:
    """Where the spec lets two answers stand; lookm's own choice is taken there."""
    def __init__(self):
        self.pivots = 0
        self.filters = 0


def merge(merge_name, kept, keys, values, lookm_slot_of, amb, eps=1e-5):
    """Merged keys, values, merged counts and slot_of for one kv head (float64)."""
    L = keys.shape[0]
    kept_set = set(kept)
    evicted = [t for t in range(L) if t not in kept_set]
    slot_of = np.full(L, -1)
    slot_of[kept] = np.arange(len(kept))
    merged = np.zeros(len(kept), dtype=int)
    if merge_name == "none" or not evicted:
        return keys[kept].copy(), values[kept].copy(), merged, slot_of

    def unit(x):
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return np.divide(x, n, out=np.zeros_like(x), where=n > 0)

    cos = unit(keys[evicted]) @ unit(keys[kept]).T
    pivot, sim = [], []
    for i, e in enumerate(evicted):
        best = int(np.argmax(cos[i]))
        chosen = lookm_slot_of[e]
        if chosen != best and chosen >= 0 and cos[i][chosen] >= cos[i][best] - eps:
            amb.pivots += 1          # within rounding: lookm's choice stands
            best = chosen
        pivot.append(best)
        sim.append(cos[i][best])
    sim = np.array(sim)

    take = np.ones(len(evicted), dtype=bool)
    if merge_name == "weighted":
        mean = sim.mean()
        take = sim >= mean
        near = np.abs(sim - mean) < eps
        for i in np.flatnonzero(near):
            amb.filters += 1
            take[i] = lookm_slot_of[evicted[i]] >= 0

    out = []
    for x in (keys, values):
        acc = x[kept].copy()
        for i, e in enumerate(evicted):
            if not take[i]:
                continue
            j = pivot[i]
            if merge_name == "pivot":
                acc[j] += (x[e] + x[kept[j]]) / 2
            elif merge_name == "avg":
                acc[j] += x[e]
            else:
                acc[j] += sim[i] * x[e]
        out.append(acc)
    for i, e in enumerate(evicted):
        if take[i]:
            merged[pivot[i]] += 1
            slot_of[e] = pivot[i]
    div = (1 + merged)[:, None]
    return out[0] / div, out[1] / div, merged, slot_of
