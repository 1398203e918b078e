"""`lookm compress` against an independent NumPy implementation of docs/method.md (paper variant),
and the command's behaviour as scripts see it."""
import io
import json
import os
import time

import h5py
import hdf5plugin  # noqa: F401  (zstd for h5py)
import numpy as np
import pytest

import reference_method as ref
from conftest import FIXTURES, run, synth

SHAPE = ["--layers", "2", "--head-dim", "16", "--images", "2", "--image-tokens", "36", "--text-tokens", "48",
         "--query", "--window", "8"]
SELECTORS = ["text-prior", "h2o", "snapkv", "streaming", "knorm", "full", "mixkv"]
MERGES = ["none", "avg", "pivot", "weighted"]
# Output tolerance: two units in the last place of the stored type.
ULP = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7, "float32": 2.0 ** -23}


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    d = tmp_path_factory.mktemp("dumps")
    return {
        "float16": synth(d / "f16.h5", *SHAPE, "--heads", "4", "--seed", "11"),
        "bfloat16": synth(d / "bf16.h5", *SHAPE, "--heads", "4", "--seed", "12", "--dtype", "bfloat16"),
        "gqa": synth(d / "gqa.h5", *SHAPE, "--heads", "6", "--kv-heads", "2", "--seed", "13"),
        "mqa": synth(d / "mqa.h5", *SHAPE, "--heads", "4", "--kv-heads", "1", "--seed", "14"),
    }


def as_float(d):
    x = d[...]
    if d.attrs.get("dtype") == "bfloat16":
        x = (x.astype(np.uint32) << 16).view(np.float32)
    return x.astype(np.float64)


def compress(dump, out, *flags):
    run("compress", dump, "-o", out, *(["--threads", "2"] if "--threads" not in flags else []), *flags, check=0)
    return out


def head_datasets(layer, g):
    """Kv head g's key, value, position and merged rows, in either cache layout (docs/format.md)."""
    if "heads" in layer:
        h = layer[f"heads/{g}"]
        return as_float(h["key"])[0], as_float(h["value"])[0], h["position"][0], h["merged"][0]
    return as_float(layer["key"])[g], as_float(layer["value"])[g], layer["position"][g], layer["merged"][g]


def check_against_reference(dump, cache, selector, merge, dtype, gqa_agg="mean", budget=(), keeps=None, recent=None,
                            adakv=None):
    """`keeps`: tokens per layer (an allocation), split 1:1 or with `recent` fixed; else `budget`.
    `adakv`: the floor of an Ada-KV head allocation."""
    amb = ref.Ambiguity()
    with h5py.File(dump, "r") as f, h5py.File(cache, "r") as c:
        modality = f["tokens/modality"][:]
        L, H, G = f.attrs["seq_len"], f.attrs["num_heads"], f.attrs["num_kv_heads"]
        for i in range(f.attrs["num_layers"]):
            n = keeps[i] if keeps else sum(ref.split_budget(L, **dict(budget)))
            hh, r = ref.split_budget(L, keep=n) if keeps or recent is not None else ref.split_budget(L, **dict(budget))
            if recent is not None:
                hh, r = n - min(recent, n), min(recent, n)
            layer = {name: as_float(f[f"layers/{i}/{name}"]) for name in f[f"layers/{i}"]}
            out = c[f"layers/{i}"]
            hhs = [hh] * G
            if adakv is not None:
                rankings = [ref.ranking(selector, layer, g, modality, r, H // G, gqa_agg=gqa_agg,
                                        scale=f.attrs["attn_scale"]) for g in range(G)]
                hhs = ref.adakv_heavy_hitters(rankings, hh, r, adakv)
                assert sum(hhs) == G * hh
            for g in range(G):
                kept = ref.select(selector, layer, g, modality, hhs[g], r, H // G, gqa_agg=gqa_agg,
                                  scale=f.attrs["attn_scale"])
                key, value, position, merged_ = head_datasets(out, g)
                assert list(position) == kept, (i, g)
                k, v, merged, slot_of = ref.merge(merge, kept, layer["key"][g], layer["value"][g],
                                                  out["slot_of"][g], amb)
                assert list(merged_) == list(merged), (i, g)
                assert list(out["slot_of"][g]) == list(slot_of), (i, g)
                for got, want in [(key, k), (value, v)]:
                    np.testing.assert_allclose(got, want, rtol=2 * ULP[dtype], atol=2 * ULP[dtype] * 1e-2)
    return amb


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("merge", MERGES)
@pytest.mark.parametrize("selector", SELECTORS)
def test_every_selector_and_merge_matches_numpy(lookm, dumps, tmp_path, selector, merge, dtype):
    cache = compress(dumps[dtype], tmp_path / "c.h5", "--selector", selector, "--merge", merge)
    amb = check_against_reference(dumps[dtype], cache, selector, merge, dtype)
    assert amb.pivots <= 2 and amb.filters <= 2, vars(amb)


@pytest.mark.parametrize("agg", ["mean", "max", "sum"])
@pytest.mark.parametrize("method,selector,merge", [("lookm", "text-prior", "pivot"), ("h2o", "h2o", "none"),
                                                   ("snapkv", "snapkv", "none"), ("lookm-weighted", "text-prior", "weighted")])
@pytest.mark.parametrize("grouping", ["gqa", "mqa"])
def test_gqa_aggregations_match_numpy(lookm, dumps, tmp_path, agg, method, selector, merge, grouping):
    """Grouped query heads (6 over 2 kv heads) and a single kv head (4 over 1)."""
    cache = compress(dumps[grouping], tmp_path / "c.h5", "--method", method, "--gqa-agg", agg)
    check_against_reference(dumps[grouping], cache, selector, merge, "float16", gqa_agg=agg)
    with h5py.File(cache, "r") as c:
        assert json.loads(c.attrs["method"])["gqa_agg"] == agg


@pytest.mark.parametrize("flags,budget", [(["--budget", "0.3"], {"budget": 0.3}), (["--keep", "25"], {"keep": 25}),
                                          (["--hh-ratio", "0.2", "--recent-ratio", "0"], {"hh_ratio": 0.2, "recent_ratio": 0.0})])
def test_budget_forms_match_numpy(lookm, dumps, tmp_path, flags, budget):
    cache = compress(dumps["float16"], tmp_path / "c.h5", *flags)
    check_against_reference(dumps["float16"], cache, "text-prior", "pivot", "float16", budget=budget.items())


@pytest.mark.parametrize("flags,layers,n,beta,window", [
    (["--budget", "0.5", "--pyramid-beta", "4", "--pyramid-window", "8"], 2, 120 * 0.5, 4, 8),
    (["--keep", "25", "--pyramid-beta", "2", "--pyramid-window", "4"], 2, 25, 2, 4),  # 37.5 and 12.5: half to even
    (["--budget", "0.3", "--pyramid-beta", "3", "--pyramid-window", "4"], 5, 120 * 0.3, 3, 4),
    (["--budget", "0.7", "--pyramid-beta", "3", "--pyramid-window", "4"], 5, 120 * 0.7, 3, 4),  # capped at L - W
    (["--budget", "0.2"], 2, 120 * 0.2, 20, 64),  # kvpress's fallback: uniform, round(n)
])
@pytest.mark.parametrize("method,selector,merge", [("lookm", "text-prior", "pivot"), ("snapkv", "snapkv", "none"),
                                                   ("h2o", "h2o", "none")])
def test_pyramid_allocation_matches_numpy(lookm, tmp_path, flags, layers, n, beta, window, method, selector, merge):
    dump = synth(tmp_path / "d.h5", *SHAPE, "--layers", str(layers), "--heads", "4", "--seed", "21")
    cache = compress(dump, tmp_path / "c.h5", "--method", method, "--allocation", "pyramid", *flags)
    keeps = ref.pyramid_keep(120, layers, n, beta, window)
    with h5py.File(cache, "r") as c:
        assert [c[f"layers/{i}/position"].shape[1] for i in range(layers)] == keeps
        m = json.loads(c.attrs["method"])
        assert (m["allocation"], m["pyramid_beta"], m["pyramid_window"]) == ("pyramid", beta, window)
    check_against_reference(dump, cache, selector, merge, "float16", keeps=keeps)


def test_pyramid_reference_is_not_trivial():
    """The NumPy schedule falls, rounds half to even, caps at L - W, and falls back as documented."""
    assert ref.pyramid_keep(120, 2, 60.0, 4, 8) == [105, 15]
    assert ref.pyramid_keep(120, 2, 25, 2, 4) == [38, 12]
    assert ref.pyramid_keep(120, 5, 84.0, 3, 4) == [116, 100, 84, 68, 52]  # most capped at L - W
    assert ref.pyramid_keep(120, 2, 24.0, 20, 64) == [24, 24]


@pytest.mark.parametrize("flags,keeps,recent", [
    (["--budget", "0.5", "--recent", "8"], [60, 60], 8),
    (["--keep", "30", "--recent", "50"], [30, 30], 50),  # the window is at most the budget
    (["--budget", "0.5", "--recent", "8", "--allocation", "pyramid", "--pyramid-beta", "4", "--pyramid-window", "8"],
     [105, 15], 8),
])
@pytest.mark.parametrize("method,selector,merge", [("lookm", "text-prior", "pivot"), ("snapkv", "snapkv", "none")])
def test_fixed_recent_window_matches_numpy(lookm, tmp_path, flags, keeps, recent, method, selector, merge):
    dump = synth(tmp_path / "d.h5", *SHAPE, "--heads", "4", "--seed", "23")
    cache = compress(dump, tmp_path / "c.h5", "--method", method, *flags)
    with h5py.File(cache, "r") as c:
        assert [c[f"layers/{i}/position"].shape[1] for i in range(2)] == keeps
        assert json.loads(c.attrs["method"])["recent"] == recent
    check_against_reference(dump, cache, selector, merge, "float16", keeps=keeps, recent=recent)


@pytest.mark.parametrize("flags,floor", [(["--budget", "0.3"], 0.2), (["--budget", "0.5", "--adakv-floor", "0.8"], 0.8),
                                         (["--keep", "40", "--recent", "4", "--adakv-floor", "0"], 0.0)])
@pytest.mark.parametrize("method,selector,merge,grouping", [
    ("lookm", "text-prior", "pivot", "gqa"), ("h2o", "h2o", "none", "gqa"), ("snapkv", "snapkv", "none", "float16"),
    ("knorm", "knorm", "none", "float16"), ("lookm-weighted", "text-prior", "weighted", "mqa"),
    ("mixkv", "mixkv", "none", "gqa")])
def test_adakv_head_allocation_matches_numpy(lookm, dumps, tmp_path, flags, floor, method, selector, merge, grouping):
    cache = compress(dumps[grouping], tmp_path / "c.h5", "--method", method, "--head-allocation", "adakv", *flags)
    recent = 4 if "--recent" in flags else None
    keeps = [40, 40] if "--keep" in flags else [int(120 * float(flags[1]))] * 2
    with h5py.File(cache, "r") as c:
        assert c.attrs["format_version"] == 2 and "ragged-heads" in c.attrs["extensions"]
        m = json.loads(c.attrs["method"])
        assert (m["head_allocation"], m["adakv_floor"]) == ("adakv", floor)
        counts = [[c[f"layers/{i}/heads/{g}/position"].shape[1] for g in range(c.attrs["num_kv_heads"])]
                  for i in range(2) if "heads" in c[f"layers/{i}"]]
        # One kv head (mqa) has nothing to share: its layers keep the plain layout.
        assert all(sum(k) == len(k) * keeps[0] for k in counts) and bool(counts) == (c.attrs["num_kv_heads"] > 1)
    check_against_reference(dumps[grouping], cache, selector, merge, "float16", keeps=keeps, recent=recent,
                            adakv=floor)


def test_adakv_gives_heads_different_counts_and_keeps_a_floor(lookm, dumps, tmp_path):
    cache = compress(dumps["float16"], tmp_path / "c.h5", "--method", "h2o", "--head-allocation", "adakv",
                     "--budget", "0.4", "--adakv-floor", "0.5")
    with h5py.File(cache, "r") as c:
        for i in range(2):
            counts = [c[f"layers/{i}/heads/{g}/position"].shape[1] for g in range(4)]
            assert len(set(counts)) > 1, counts            # the heads really compete
            assert min(counts) >= int(48 * 0.5), counts    # each keeps its floor (n = 48: 24 recent + 24 own)


def expected_keep(L, layers, G, D, elem, target, pyramid=None):
    """The largest --keep N whose cache K/V bytes fit `target` (docs/method.md section 2), computed
    here from the definitions: a layer keeps N (or its pyramid share), and is copied whole when
    that is 0 or reaches L."""
    def total(n):
        keeps = ref.pyramid_keep(L, layers, n, *pyramid) if pyramid else [n] * layers
        return sum((L if k == 0 or k >= L else k) * G * 2 * D * elem for k in keeps)
    fits = [n for n in range(1, L + 1) if total(n) <= target]
    return (fits[-1], total) if fits else (None, total)


@pytest.mark.parametrize("target,goal,flags,pyramid", [
    ("9000", 9000, [], None),
    ("25%", 30720 // 4, ["--head-allocation", "adakv"], None),
    ("8KiB", 8192, ["--allocation", "pyramid", "--pyramid-beta", "4", "--pyramid-window", "8"], (4, 8)),
    ("0.012MB", 12000, ["--allocation", "pyramid", "--pyramid-beta", "4", "--pyramid-window", "8",
                        "--head-allocation", "adakv", "--method", "h2o"], (4, 8)),
])
def test_target_bytes_keeps_the_most_that_fits(lookm, dumps, tmp_path, target, goal, flags, pyramid):
    dump = dumps["gqa"]
    with h5py.File(dump, "r") as f:
        L, layers, G, D = (int(f.attrs[k]) for k in ("seq_len", "num_layers", "num_kv_heads", "head_dim"))
    assert L * layers * G * 2 * D * 2 == 30720  # the dump's K/V bytes, which 25% is a share of
    p = run("compress", dump, "-o", tmp_path / "c.h5", "--target-bytes", target, "--json", *flags, check=0)
    summary = json.loads(p.stdout)
    n, total = expected_keep(L, layers, G, D, 2, goal, pyramid)
    assert summary["method"]["keep"] == n and summary["method"]["target_bytes"] == goal
    assert summary["kv_bytes_out"] == total(n) <= goal
    # One more token of budget would not fit: compress says so through the same flags.
    more = run("compress", dump, "-o", tmp_path / "d.h5", "--keep", str(n + 1), "--json",
               *[f for f in flags], check=0)
    assert json.loads(more.stdout)["kv_bytes_out"] > goal
    r = run("report", tmp_path / "c.h5", "--format", "json", check=0)
    report = json.loads(r.stdout)
    assert report["target_bytes"] == goal and report["memory"]["kv_bytes_cache"] <= goal
    assert "target" in run("report", tmp_path / "c.h5", check=0).stdout.decode()


def test_uniform_allocation_is_the_default_and_leaves_the_bytes(lookm, dumps, tmp_path):
    a = compress(dumps["float16"], tmp_path / "a.h5", "--budget", "0.3")
    b = compress(dumps["float16"], tmp_path / "b.h5", "--budget", "0.3", "--allocation", "uniform")
    assert a.read_bytes() == b.read_bytes()
    with h5py.File(a, "r") as c:
        assert "allocation" not in json.loads(c.attrs["method"])


def test_sweep_takes_allocations(lookm, tmp_path):
    dump = synth(tmp_path / "d.h5", *SHAPE, "--layers", "3", "--heads", "4", "--seed", "22")
    p = run("sweep", dump, "--methods", "lookm,lookm+pyramid,h2o+uniform", "--budgets", "0.5", "--format", "json",
            check=0)
    rows = {r["method"]: r for r in json.loads(p.stdout)["rows"]}
    assert set(rows) == {"lookm", "lookm+pyramid", "h2o+uniform"}
    # 3 layers at n = 60 with beta 20, W 64: least = 3 < W, so kvpress's fallback keeps round(60) everywhere.
    assert rows["lookm+pyramid"]["kept_fraction"] == rows["lookm"]["kept_fraction"] == 0.5


def test_sweep_sets_the_pyramid_parameters(lookm, tmp_path):
    dump = synth(tmp_path / "d.h5", *SHAPE, "--layers", "3", "--heads", "4", "--seed", "22")
    p = run("sweep", dump, "--methods", "lookm+pyramid", "--budgets", "0.5", "--pyramid-beta", "4",
            "--pyramid-window", "8", "--format", "json", "--keep-caches", tmp_path / "k", check=0)
    row = json.loads(p.stdout)["rows"][0]
    with h5py.File(row["cache"], "r") as c:
        assert [c[f"layers/{i}/position"].shape[1] for i in range(3)] == ref.pyramid_keep(120, 3, 60.0, 4, 8)
    bad = run("sweep", dump, "--methods", "lookm", "--pyramid-beta", "4")
    assert bad.returncode == 2 and "+pyramid" in bad.stderr.decode()


def test_sweep_counts_kv_bytes_and_takes_head_allocations(lookm, dumps, tmp_path):
    dump = dumps["gqa"]
    p = run("sweep", dump, "--methods", "h2o,h2o+adakv,lookm+pyramid+adakv", "--budgets", "0.1,0.3", "--format", "json",
            "--plot", tmp_path / "p.svg", check=0)
    rows = json.loads(p.stdout)["rows"]
    for r in rows:  # 30720 bytes of K/V in the dump
        assert r["kv_bytes"] == round(r["kept_fraction"] * 30720)
    by = {(r["method"], r["budget"]): r for r in rows}
    assert by[("h2o", 0.3)]["kv_bytes"] == by[("h2o+adakv", 0.3)]["kv_bytes"]  # Ada-KV keeps the layer's total
    assert by[("h2o", 0.3)]["output_error"] != by[("h2o+adakv", 0.3)]["output_error"]
    assert "K/V memory kept (KiB)" in (tmp_path / "p.svg").read_text()


@pytest.mark.parametrize("flags", [["--head-allocation", "adakv"], ["--allocation", "pyramid", "--pyramid-beta", "4",
                                                                      "--pyramid-window", "8", "--head-allocation", "adakv"]])
def test_allocations_are_identical_for_any_thread_count(lookm, dumps, tmp_path, flags):
    outs = [compress(dumps["gqa"], tmp_path / f"c{t}.h5", "--budget", "0.4", "--threads", str(t), *flags).read_bytes()
            for t in (1, 2, 3)]
    assert outs[0] == outs[1] == outs[2]

def test_scores_from_queries_equal_scores_from_attn_score(lookm, dumps, tmp_path):
    no_scores = tmp_path / "q.h5"
    with h5py.File(dumps["float16"], "r") as f, h5py.File(no_scores, "w") as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v
        f.copy("tokens", g)
        for i in range(f.attrs["num_layers"]):
            for name in ["key", "value", "query"]:
                f.copy(f"layers/{i}/{name}", g, f"layers/{i}/{name}")
    a = compress(dumps["float16"], tmp_path / "a.h5")
    b = compress(no_scores, tmp_path / "b.h5")
    with h5py.File(a, "r") as x, h5py.File(b, "r") as y:
        for i in range(2):
            for name in ["key", "value", "position", "slot_of", "merged"]:
                assert np.array_equal(x[f"layers/{i}/{name}"][...], y[f"layers/{i}/{name}"][...]), (i, name)
    # snapkv from queries (no window_attn) selects what it selects from window_attn.
    c = compress(no_scores, tmp_path / "c.h5", "--method", "snapkv", "--window", "8")
    d = compress(dumps["float16"], tmp_path / "d.h5", "--method", "snapkv", "--window", "8")
    with h5py.File(c, "r") as x, h5py.File(d, "r") as y:
        assert np.array_equal(x["layers/1/position"][...], y["layers/1/position"][...])
    # Without attention, methods that need it fail naming the layer, the dataset and what works.
    bare = tmp_path / "bare.h5"
    with h5py.File(no_scores, "r") as f, h5py.File(bare, "w") as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v
        f.copy("tokens", g)
        for i in range(2):
            for name in ["key", "value"]:
                f.copy(f"layers/{i}/{name}", g, f"layers/{i}/{name}")
    p = run("compress", bare, "-o", tmp_path / "e.h5", check=3)
    err = p.stderr.decode()
    assert "/layers/0" in err and "attn_score" in err and "query" in err and "streaming, random, knorm, full" in err
    assert not (tmp_path / "e.h5").exists()
    compress(bare, tmp_path / "f.h5", "--method", "knorm")


def test_random_is_seeded_and_keeps_the_budget(lookm, dumps, tmp_path):
    a = compress(dumps["float16"], tmp_path / "a.h5", "--method", "random", "--seed", "5")
    b = compress(dumps["float16"], tmp_path / "b.h5", "--method", "random", "--seed", "5")
    c = compress(dumps["float16"], tmp_path / "c.h5", "--method", "random", "--seed", "6")
    with h5py.File(a, "r") as x, h5py.File(b, "r") as y, h5py.File(c, "r") as z:
        L = x.attrs["seq_len"]
        hh, recent = ref.split_budget(L)
        pa = x["layers/0/position"][...]
        assert np.array_equal(pa, y["layers/0/position"][...])
        assert not np.array_equal(pa, z["layers/0/position"][...])
        assert pa.shape[1] == hh + recent
        assert all(list(row[hh:]) == list(range(L - recent, L)) for row in pa)
        assert len({tuple(r) for r in pa}) > 1      # heads draw independently


def test_paper_and_reference_differ_where_the_spec_says(lookm, tmp_path):
    """Reference keeps every old text token (rule 1) and forces sinks for merging h2o (rule 2)."""
    dump = synth(tmp_path / "d.h5", "--layers", "1", "--heads", "2", "--head-dim", "16", "--images", "1",
                 "--image-tokens", "40", "--text-tokens", "60", "--dtype", "float32")
    paper = compress(dump, tmp_path / "p.h5", "--method", "lookm")
    reference = compress(dump, tmp_path / "r.h5", "--method", "lookm", "--variant", "reference")
    with h5py.File(dump, "r") as f, h5py.File(paper, "r") as p, h5py.File(reference, "r") as r:
        L = f.attrs["seq_len"]
        modality = f["tokens/modality"][:]
        hh, recent = ref.split_budget(L)
        old_text = [t for t in range(L - recent) if modality[t] == 0]
        assert len(old_text) > hh
        assert p["layers/0/position"].shape[1] == hh + recent
        assert r["layers/0/position"].shape[1] == len(old_text) + recent
        assert set(old_text) <= set(r["layers/0/position"][0])
        assert json.loads(r.attrs["method"])["variant"] == "reference"
    sinks = compress(dump, tmp_path / "s.h5", "--selector", "h2o", "--merge", "pivot", "--variant", "reference")
    plain = compress(dump, tmp_path / "h.h5", "--selector", "h2o", "--merge", "pivot")
    with h5py.File(sinks, "r") as s, h5py.File(plain, "r") as h, h5py.File(dump, "r") as f:
        scores = f["layers/0/attn_score"][:]
        for g in range(2):
            assert list(s["layers/0/position"][g][:4]) == [0, 1, 2, 3]
            old = L - recent
            weakest = int(np.argmin(scores[g][:4]))
            forced = scores[g][weakest] < np.sort(scores[g][:old])[::-1][hh - 1]
            assert (weakest in h["layers/0/position"][g]) == (not forced)


def test_paper_ranks_images_by_exact_scores_where_the_reference_shift_ties(lookm, tmp_path):
    """Image scores 1.0, 1.0005, ... collapse to one Float32 value after + (-65516); paper keeps
    the truly highest ones, reference keeps whichever tied ones PyTorch's top-k leaves in front."""
    dump = tmp_path / "ties.h5"
    L, D = 40, 8
    modality = np.array([0] * 4 + [1] * 28 + [0] * 8, dtype=np.uint8)   # 4 old text tokens
    rng = np.random.default_rng(0)
    scores = np.full((1, L), 2.0, dtype=np.float32)
    scores[0, 4:32] = 1.0 + 0.0005 * np.arange(28, dtype=np.float32)      # rising: the best are last
    shifted = scores[0, 4:32] + np.float32(-65516)
    assert len(set(shifted.tolist())) < 5                                    # the reference shift ties them
    with h5py.File(dump, "w") as f:
        f.attrs.update(format="lookm-kv-dump", format_version=1, num_layers=1, num_heads=1, num_kv_heads=1,
                       head_dim=D, seq_len=L)
        f["tokens/modality"] = modality
        f["layers/0/key"] = rng.standard_normal((1, L, D)).astype(np.float32)
        f["layers/0/value"] = rng.standard_normal((1, L, D)).astype(np.float32)
        f["layers/0/attn_score"] = scores
    flags = ["--method", "text-prior", "--hh-ratio", "0.25", "--recent-ratio", "0.2"]   # hh 10: 4 text + 6 images
    paper = compress(dump, tmp_path / "p.h5", *flags)
    reference = compress(dump, tmp_path / "r.h5", *flags, "--variant", "reference")
    with h5py.File(paper, "r") as p, h5py.File(reference, "r") as r:
        kept_paper = [t for t in p["layers/0/position"][0] if modality[t] == 1]
        kept_reference = [t for t in r["layers/0/position"][0] if modality[t] == 1]
    assert kept_paper == list(range(26, 32))          # the six highest exact scores
    assert len(kept_reference) == 6
    assert kept_reference != kept_paper


def test_cli_output_naming_json_pipes_and_determinism(lookm, tmp_path):
    dump = tmp_path / "dump.h5"
    dump.write_bytes((FIXTURES / "llava-mini.h5").read_bytes())
    p = run("compress", dump, "--json", check=0)
    out = tmp_path / "dump.lookm.h5"
    assert out.exists()
    summary = json.loads(p.stdout)
    assert summary["output"] == str(out) and summary["seq_len"] == 320
    assert [l["kept"] for l in summary["layers"]] == [64] * 4
    assert summary["kv_bytes_out"] * 5 == summary["kv_bytes_in"]
    assert "kept layers 0-3 64/320" in p.stderr.decode()
    assert run("inspect", out, check=0).stdout.decode().count("valid") == 1
    # Refuses to overwrite, leaves the existing cache alone.
    before = out.read_bytes()
    p = run("compress", dump, check=4)
    assert "already exists" in p.stderr.decode() and out.read_bytes() == before
    # Same bytes whatever the thread count; and through stdin and stdout.
    run("compress", dump, "-o", tmp_path / "one.h5", "--threads", "1", check=0)
    time.sleep(1.1)   # a second apart: HDF5's object timestamps would show
    run("compress", dump, "-o", tmp_path / "two.h5", "--threads", "2", check=0)
    one = (tmp_path / "one.h5").read_bytes()
    assert one == (tmp_path / "two.h5").read_bytes()
    piped = run("compress", "-", "-o", "-", stdin=dump.read_bytes(), check=0).stdout
    with h5py.File(io.BytesIO(piped), "r") as c, h5py.File(tmp_path / "one.h5", "r") as d:
        assert c.attrs["source"] == "-"
        for i in range(4):
            assert np.array_equal(c[f"layers/{i}/key"][...], d[f"layers/{i}/key"][...])
    assert sorted(os.listdir(tmp_path)) == ["dump.h5", "dump.lookm.h5", "one.h5", "two.h5"]


def test_method_attribute_is_canonical(lookm, dumps, tmp_path):
    a = compress(dumps["float16"], tmp_path / "a.h5", "--method", "snapkv", "--budget", "0.25")
    b = compress(dumps["gqa"], tmp_path / "b.h5", "--selector", "streaming", "--merge", "avg", "--codec", "none")
    with h5py.File(a, "r") as x, h5py.File(b, "r") as y:
        assert x.attrs["method"] == ('{"budget":0.25,"codec":"zstd","kernel":7,"level":3,"merge":"none",'
                                     '"method":"snapkv","selector":"snapkv","variant":"paper","window":32}')
        assert y.attrs["method"] == ('{"codec":"none","hh_ratio":0.1,"merge":"avg","recent_ratio":0.1,'
                                     '"selector":"streaming","sinks":4,"variant":"paper"}')
        assert x["layers/0/key"].compression is not None or "32015" in map(str, x["layers/0/key"]._filters)
        assert y["layers/0/key"]._filters == {}


@pytest.mark.parametrize("args,words", [
    (["--method", "nope"], ["unknown method 'nope'", "lookm"]),
    (["--selector", "h2o", "--sinks", "2"], ["--sinks", "streaming"]),
    (["--window", "8"], ["--window", "snapkv"]),
    (["--method", "random", "--gqa-agg", "max"], ["--gqa-agg"]),
    (["--seed", "1"], ["--seed", "random"]),
    (["--budget", "0.2", "--keep", "5"], ["one budget"]),
    (["--hh-ratio", "1.5"], ["--hh-ratio 1.5", "[0, 1]"]),
    (["--hh-ratio", "0", "--recent-ratio", "0"], ["nothing would be kept"]),
    (["--keep", "0"], ["--keep 0"]),
    (["--method", "snapkv", "--kernel", "4"], ["--kernel 4", "odd"]),
    (["--variant", "reference", "--method", "streaming"], ["--variant reference", "streaming"]),
    (["--variant", "reference", "--budget", "0.2"], ["--variant reference", "--budget"]),
    (["--json", "-o", "-"], ["--json"]),
    (["--variant", "best"], ["best"]),
    (["--allocation", "pyramid"], ["--allocation pyramid", "--budget"]),
    (["--allocation", "steep", "--budget", "0.2"], ["unknown allocation 'steep'", "pyramid"]),
    (["--pyramid-beta", "3", "--budget", "0.2"], ["--pyramid-beta", "--allocation pyramid"]),
    (["--allocation", "pyramid", "--budget", "0.2", "--pyramid-beta", "0"], ["--pyramid-beta 0"]),
    (["--variant", "reference", "--allocation", "pyramid"], ["--variant reference"]),
    (["--recent", "8"], ["--recent", "--keep or --target-bytes"]),
    (["--budget", "0.2", "--recent", "-1"], ["--recent -1"]),
    (["--budget", "0.2", "--head-allocation", "adakv", "--method", "random"], ["random", "does not rank"]),
    (["--budget", "0.2", "--head-allocation", "fair"], ["unknown head allocation 'fair'", "adakv"]),
    (["--budget", "0.2", "--adakv-floor", "0.5"], ["--adakv-floor", "--head-allocation adakv"]),
    (["--budget", "0.2", "--head-allocation", "adakv", "--adakv-floor", "1.5"], ["--adakv-floor 1.5"]),
    (["--variant", "reference", "--head-allocation", "adakv"], ["--variant reference"]),
    (["--target-bytes", "1GB"], ["--target-bytes", "not below the dump's own"]),
    (["--target-bytes", "10B"], ["--target-bytes", "cannot be met"]),
    (["--target-bytes", "12 parsecs"], ["--target-bytes 12 parsecs", "not a size"]),
    (["--target-bytes", "150%"], ["--target-bytes 150%"]),
    (["--target-bytes", "20%", "--keep", "5"], ["give one budget"]),
])
def test_usage_errors(lookm, tmp_path, args, words):
    p = run("compress", FIXTURES / "llava-mini.h5", *(["-o", tmp_path / "c.h5"] if "-o" not in args else []), *args)
    assert p.returncode == 2, p.stderr.decode()
    for w in words:
        assert w in p.stderr.decode(), p.stderr.decode()
    assert os.listdir(tmp_path) == []


def test_reference_with_gqa_is_a_usage_error(lookm, tmp_path):
    p = run("compress", FIXTURES / "gqa-bf16.h5", "-o", tmp_path / "c.h5", "--variant", "reference")
    assert p.returncode == 2 and "grouped-query" in p.stderr.decode()
    assert os.listdir(tmp_path) == []


def test_short_prompt_is_copied_and_said_so(lookm, tmp_path):
    dump = synth(tmp_path / "d.h5", "--layers", "1", "--heads", "2", "--head-dim", "8", "--images", "1",
                 "--image-tokens", "4", "--text-tokens", "4")
    p = run("compress", dump, "-o", tmp_path / "c.h5", "--json", check=0)
    layer = json.loads(p.stdout)["layers"][0]
    assert layer["kept"] == 8 and "copied" in layer
    assert "copied" in p.stderr.decode()
    with h5py.File(dump, "r") as f, h5py.File(tmp_path / "c.h5", "r") as c:
        assert np.array_equal(f["layers/0/key"][...], c["layers/0/key"][...])
        assert list(c["layers/0/slot_of"][0]) == list(range(8))


def test_reference_leaves_prompts_without_images_unchanged_except_snapkv(lookm, tmp_path):
    dump = synth(tmp_path / "text.h5", "--layers", "1", "--heads", "2", "--head-dim", "8", "--images", "0",
                 "--text-tokens", "60", "--query", "--dtype", "float32")
    p = run("compress", dump, "-o", tmp_path / "r.h5", "--variant", "reference", "--json", check=0)
    layer = json.loads(p.stdout)["layers"][0]
    assert layer["kept"] == 60 and "no image" in layer["copied"]
    assert "no image" in p.stderr.decode()
    paper = json.loads(run("compress", dump, "-o", tmp_path / "p.h5", "--json", check=0).stdout)["layers"][0]
    assert paper["kept"] == 12 and "copied" not in paper
    snap = json.loads(run("compress", dump, "-o", tmp_path / "s.h5", "--method", "snapkv", "--variant", "reference",
                          "--json", check=0).stdout)["layers"][0]
    assert snap["kept"] == 12 and "copied" not in snap


def test_reference_snapkv_uses_the_official_parameters(lookm, tmp_path):
    """Rule 11: window w = floor(L * recent_ratio) rows, column sums over the old columns,
    pooling of width 5 with zero padding counted, top hh, plus the last w positions."""
    dump = synth(tmp_path / "d.h5", "--layers", "1", "--heads", "2", "--head-dim", "16", "--images", "1",
                 "--image-tokens", "49", "--text-tokens", "51", "--query", "--dtype", "float32", "--seed", "3")
    cache = compress(dump, tmp_path / "c.h5", "--method", "snapkv", "--variant", "reference", "--hh-ratio", "0.15",
                     "--recent-ratio", "0.12")
    with h5py.File(dump, "r") as f, h5py.File(cache, "r") as c:
        L = f.attrs["seq_len"]
        hh, w = int(L * 0.15), int(L * 0.12)
        for h in range(2):
            rows = ref.softmax_rows(as_float(f["layers/0/query"])[h], as_float(f["layers/0/key"])[h],
                                    f.attrs["attn_scale"], L - w)
            pooled = ref.pool(rows[:, :L - w].sum(axis=0), 5)
            want = sorted(ref.top(pooled, hh, range(L - w))) + list(range(L - w, L))
            assert list(c["layers/0/position"][h]) == want
        assert json.loads(c.attrs["method"])["kernel"] == 5


@pytest.mark.parametrize("kernel", ["avx512", "avx2", "scalar"])
def test_every_pivot_kernel_path_writes_the_same_cache(lookm, dumps, tmp_path, kernel):
    """LOOKM_KERNEL lowers the similarity kernel's path (Sources/CKernels/similarity.c): every path
    computes the same chain of fused multiply-adds, so caches are byte-identical to the default path's
    (bfloat16 screening, screen.c, where the CPU has AVX512_BF16), on dumps with ragged kept counts,
    GQA, and head_dim 128."""
    big = synth(tmp_path / "d128.h5", "--layers", "2", "--heads", "4", "--head-dim", "128", "--images", "1",
                "--image-tokens", "150", "--text-tokens", "61", "--seed", "5")
    cases = [(dumps["gqa"], ["--method", "lookm-weighted", "--budget", "0.3"]), (big, ["--method", "lookm"]),
             (big, ["--method", "lookm-avg", "--variant", "reference"]),
             (FIXTURES / "llava-mini.h5", ["--method", "lookm", "--head-allocation", "adakv", "--budget", "0.4"])]
    for i, (dump, flags) in enumerate(cases):
        default = compress(dump, tmp_path / f"d{i}.h5", *flags).read_bytes()
        env = dict(os.environ, LOOKM_KERNEL=kernel)
        run("compress", dump, "-o", tmp_path / f"k{i}.h5", *flags, check=0, env=env)
        assert (tmp_path / f"k{i}.h5").read_bytes() == default, (kernel, flags)


def test_chunk_by_chunk_reads_give_the_same_cache_as_any_layout(lookm, dumps, tmp_path):
    """Heads stored as (1, rows, head_dim) chunks are read chunk by chunk without HDF5
    (Sources/LookM/HDF5/H5Dataset.swift, H5Dataset+ChunkCopies.swift: plain, zstd, shuffle + zstd);
    a partial last chunk, an unallocated chunk (fill value, read through HDF5 instead), big-endian
    storage, filters lookm leaves to HDF5 (shuffle alone, gzip) and a contiguous copy must all give
    the same cache, for 2- and 4-byte elements."""
    src = dumps["float16"]
    compress(src, tmp_path / "base.h5", "--method", "lookm")

    def relayout(name, chunks, dtype=None, skip_first_chunk=False, **filters):
        out = tmp_path / f"{name}.h5"
        with h5py.File(src, "r") as f, h5py.File(out, "w") as g:
            for k, v in f.attrs.items():
                g.attrs[k] = v

            def visit(path, obj):
                if not isinstance(obj, h5py.Dataset):
                    return
                data = obj[()]
                if path.split("/")[-1] in ("key", "value") and data.ndim == 3:
                    d = g.create_dataset(path, shape=data.shape, dtype=dtype or data.dtype,
                                         chunks=chunks(data.shape) if chunks else None, **filters)
                    if skip_first_chunk:  # leave chunk (0, 0, 0) unwritten; it must hold zeros anyway
                        r = chunks(data.shape)[1]
                        d[1:] = data[1:]
                        d[0, r:] = data[0, r:]
                    else:
                        d[...] = data
                else:
                    g.create_dataset(path, data=data)
                for k, v in obj.attrs.items():
                    g[path].attrs[k] = v
            f.visititems(visit)
        return out

    whole = lambda s: (1, s[1], s[2])  # noqa: E731
    cases = [relayout("partial", lambda s: (1, s[1] // 3 + 1, s[2])), relayout("contiguous", None),
             relayout("bigendian", lambda s: (1, 32, s[2]), dtype=">f2"),
             relayout("zstd", whole, **hdf5plugin.Zstd()),
             relayout("shuffle-zstd", lambda s: (1, s[1] // 3 + 1, s[2]), shuffle=True, **hdf5plugin.Zstd()),
             relayout("bigendian-zstd", whole, dtype=">f2", shuffle=True, **hdf5plugin.Zstd()),
             relayout("shuffle", whole, shuffle=True), relayout("gzip", whole, compression="gzip")]
    for dump in cases:
        compress(dump, tmp_path / f"c-{dump.stem}.h5", "--method", "lookm")
        with h5py.File(tmp_path / f"c-{dump.stem}.h5", "r") as a, h5py.File(tmp_path / "base.h5", "r") as b:
            for layer in range(2):
                for k in ("key", "value", "position"):
                    assert np.array_equal(a[f"layers/{layer}/{k}"][()], b[f"layers/{layer}/{k}"][()]), (dump, k)
    # An unallocated chunk reads as the fill value (0): the same as a dump whose rows there are 0.
    zeroed = relayout("zeroed", lambda s: (1, 32, s[2]))
    with h5py.File(zeroed, "r+") as f:
        for layer in range(2):
            for k in ("key", "value"):
                f[f"layers/{layer}/{k}"][0, :32] = 0
    hole = relayout("hole", lambda s: (1, 32, s[2]), skip_first_chunk=True)
    with h5py.File(hole, "r") as f:
        assert f["layers/0/key"].id.get_num_chunks() < f["layers/0/key"].shape[0] * -(-f["layers/0/key"].shape[1] // 32)
    # 4-byte elements: plain and shuffled + zstd chunks read alike.
    compress(relayout("f32", whole, dtype="<f4"), tmp_path / "c-f32.h5", "--method", "lookm")
    compress(relayout("f32-zstd", whole, dtype="<f4", shuffle=True, **hdf5plugin.Zstd()), tmp_path / "c-f32z.h5",
             "--method", "lookm")
    with h5py.File(tmp_path / "c-f32.h5", "r") as a, h5py.File(tmp_path / "c-f32z.h5", "r") as b:
        for layer in range(2):
            for k in ("key", "value", "position"):
                assert np.array_equal(a[f"layers/{layer}/{k}"][()], b[f"layers/{layer}/{k}"][()])
    compress(zeroed, tmp_path / "cz.h5", "--method", "lookm")
    compress(hole, tmp_path / "ch.h5", "--method", "lookm")
    with h5py.File(tmp_path / "cz.h5", "r") as a, h5py.File(tmp_path / "ch.h5", "r") as b:
        for layer in range(2):
            for k in ("key", "value", "position"):
                assert np.array_equal(a[f"layers/{layer}/{k}"][()], b[f"layers/{layer}/{k}"][()])
