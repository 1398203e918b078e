"""The Python companion against a real transformers LLaVA (tiny, randomly initialised from a
config: nothing is downloaded): export -> lookm -> load -> generate."""
import subprocess

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest

import torch  # noqa: E402
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration  # noqa: E402

from conftest import ROOT, run  # noqa: E402
from lookm_kv import export_dump, greedy_continue, load_cache, ragged_attention
from lookm_kv.export import _attention_modules, _queries

IMAGE = 300


def tiny_llava(dtype=torch.float32, attn="eager"):
    """CLIP tower with 336-pixel images and 14-pixel patches (576 image tokens), a 2-layer Llama
    with head_dim 128 and 2 heads."""
    vision = CLIPVisionConfig(image_size=336, patch_size=14, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, projection_dim=32)
    text = LlamaConfig(vocab_size=320, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=2,
                       num_key_value_heads=2, head_dim=128, max_position_embeddings=4096)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(LlavaConfig(vision_config=vision, text_config=text, image_token_index=IMAGE,
                                                      image_seq_length=576)).eval().to(dtype)
    model.set_attn_implementation(attn)
    return model


def prompt():
    ids = [1] + list(range(10, 30)) + [IMAGE] * 576 + list(range(40, 50)) + [IMAGE] * 576 + list(range(60, 80))
    torch.manual_seed(1)
    return torch.tensor([ids]), torch.randn(2, 3, 336, 336)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("llava")
    model = tiny_llava()
    ids, pix = prompt()
    path = d / "dump.h5"
    tokens = export_dump(model, path, ids, pix, probes=4, store_query=True)
    with torch.no_grad():
        own = model(input_ids=ids, pixel_values=pix, use_cache=True, output_attentions=True)
    return dict(model=model, ids=ids, pix=pix, path=path, tokens=tokens, own=own, dir=d)


def as_float(ds):
    x = ds[...]
    if ds.attrs.get("dtype") == "bfloat16":
        x = (x.astype(np.uint32) << 16).view(np.float32)
    return x.astype(np.float64)


def test_dump_matches_the_model(lookm, exported):
    run("inspect", exported["path"], check=0)
    own, L = exported["own"], exported["ids"].shape[1]
    with h5py.File(exported["path"], "r") as f:
        assert f.attrs["seq_len"] == L and f.attrs["num_layers"] == 2 and f.attrs["head_dim"] == 128
        modality = f["tokens/modality"][:]
        assert modality.sum() == 2 * 576 and list(np.unique(f["tokens/segment"][:])) == [-1, 0, 1]
        for i in range(2):
            g = f[f"layers/{i}"]
            layer = own.cache.layers[i]
            assert np.array_equal(g["key"][...], layer.keys[0].numpy())
            assert np.array_equal(g["value"][...], layer.values[0].numpy())
            weights = own.attentions[i][0].double()
            np.testing.assert_allclose(g["attn_score"][...], weights.sum(dim=1).numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(g["window_attn"][...], weights[:, -32:].numpy(), rtol=1e-5, atol=1e-7)
            # The stored queries (after rotary) reproduce the model's attention exactly.
            q, k = as_float(g["query"]), as_float(g["key"])
            logits = q @ k.transpose(0, 2, 1) * f.attrs["attn_scale"]
            logits[:, np.triu_indices(L, 1)[0], np.triu_indices(L, 1)[1]] = -np.inf
            p = np.exp(logits - logits.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            np.testing.assert_allclose(p.sum(axis=1), g["attn_score"][...], rtol=1e-4, atol=1e-5)
            assert g["probe_query"].shape == (2, 4, 128)
            assert g["key"].chunks[0] == 1 and g["key"].chunks[1] * 128 * 4 >= 256 << 10 or g["key"].chunks[1] == L
        assert list(f["probe/position"][:]) == [L, L + 1, L + 2, L + 3]


def test_sdpa_export_derives_the_same_scores(lookm, exported, tmp_path):
    model = tiny_llava(attn="sdpa")
    path = tmp_path / "sdpa.h5"
    export_dump(model, path, exported["ids"], exported["pix"], probes=0)
    with h5py.File(path, "r") as a, h5py.File(exported["path"], "r") as b:
        for i in range(2):
            np.testing.assert_allclose(a[f"layers/{i}/attn_score"][...], b[f"layers/{i}/attn_score"][...], rtol=1e-4, atol=1e-5)
            # Deeper layers see sdpa's last-bit differences in the layers before them.
            np.testing.assert_allclose(a[f"layers/{i}/key"][...], b[f"layers/{i}/key"][...], rtol=1e-4, atol=1e-5)


def own_continuation(exported, steps):
    model = exported["model"]
    with torch.no_grad():
        out = model(input_ids=exported["ids"], pixel_values=exported["pix"], use_cache=True)
    first = out.logits[0, -1].argmax()
    return first, greedy_continue(model, out.cache, first, exported["ids"].shape[1], steps)


def test_full_cache_continues_exactly(lookm, exported):
    cache_path = exported["dir"] / "full.h5"
    run("compress", exported["path"], "-o", cache_path, "--method", "full", "--force", check=0)
    first, (want_tokens, want_logits) = own_continuation(exported, 8)
    cache, info = load_cache(cache_path)
    assert info["seq_len"] == exported["ids"].shape[1]
    tokens, logits = greedy_continue(exported["model"], cache, first, info["next_position"], 8)
    assert tokens == want_tokens
    assert torch.max(torch.abs(logits - want_logits)).item() < 1e-4


@pytest.mark.parametrize("budget", ["0.05", "0.2", "0.5"])
def test_lookm_cache_generates(lookm, exported, budget):
    cache_path = exported["dir"] / f"lookm-{budget}.h5"
    run("compress", exported["path"], "-o", cache_path, "--budget", budget, "--force", check=0)
    first, (_, want_logits) = own_continuation(exported, 1)
    cache, info = load_cache(cache_path)
    L = exported["ids"].shape[1]
    kept = info["position"][0].shape[1]
    assert kept == int(L * float(budget))
    tokens, logits = greedy_continue(exported["model"], cache, first, info["next_position"], 4)
    assert len(tokens) == 4 and torch.isfinite(logits).all()
    diff = torch.max(torch.abs(logits - want_logits)).item()
    print(f"budget {budget}: kept {kept}/{L}, first-step max |logit difference| {diff:.4g}")


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_ragged_cache_attends_to_each_heads_own_slots(lookm, exported, attn):
    """An Ada-KV cache (docs/format.md ragged-heads) loaded, padded and masked: the first decoding
    step's attention output equals a direct NumPy softmax over each head's own slots."""
    cache_path = exported["dir"] / "adakv.h5"
    run("compress", exported["path"], "-o", cache_path, "--method", "h2o", "--budget", "0.1", "--head-allocation",
        "adakv", "--adakv-floor", "0", "--force", check=0)
    model = exported["model"]
    model.set_attn_implementation(attn)
    cache, info = load_cache(cache_path)
    assert info["padding"] is not None
    with h5py.File(cache_path, "r") as f:
        own = {(i, g): (as_float(f[f"layers/{i}/heads/{g}/key"])[0], as_float(f[f"layers/{i}/heads/{g}/value"])[0])
               for i in range(2) for g in range(2)}
    with h5py.File(exported["path"], "r") as f:
        scale = f.attrs["attn_scale"]
    assert any(own[(i, 0)][0].shape != own[(i, 1)][0].shape for i in range(2))  # really ragged
    seen = {}
    mods = _attention_modules(model)
    hooks = [m.register_forward_hook(lambda mod, a, kw, out: seen.setdefault(mod.layer_idx, {}).update(
        q=_queries(mod, kw).double().numpy()), with_kwargs=True) for m in mods]
    hooks += [m.o_proj.register_forward_pre_hook(lambda mod, a, i=m.layer_idx: seen.setdefault(i, {}).update(
        out=a[0][0, -1].double().numpy())) for m in mods]
    try:
        with ragged_attention(model, info["padding"]), torch.no_grad():
            model(input_ids=torch.tensor([[5]]), cache=cache, position_ids=torch.tensor([[info["next_position"]]]),
                  use_cache=True)
    finally:
        for h in hooks:
            h.remove()
        model.set_attn_implementation("eager")
    for i in range(2):
        q = seen[i]["q"][:, -1]  # [heads, head_dim] of the new token (after rotary)
        want, unmasked = [], []
        for h in range(2):
            k, v = own[(i, h)]
            # The new token's own key and value are in the cache after the step: the last row.
            layer = cache.layers[i]
            k = np.vstack([k, layer.keys[0, h, -1:].double().numpy()])
            v = np.vstack([v, layer.values[0, h, -1:].double().numpy()])
            p = np.exp(q[h] @ k.T * scale - (q[h] @ k.T * scale).max())
            want.append(p @ v / p.sum())
            padded = layer.keys.shape[2] - 1 - (k.shape[0] - 1)
            kz = np.vstack([k[:-1], np.zeros((padded, k.shape[1])), k[-1:]])
            vz = np.vstack([v[:-1], np.zeros((padded, v.shape[1])), v[-1:]])
            pz = np.exp(q[h] @ kz.T * scale - (q[h] @ kz.T * scale).max())
            unmasked.append(pz @ vz / pz.sum())
        np.testing.assert_allclose(seen[i]["out"], np.concatenate(want), rtol=1e-4, atol=1e-6)
        if any(own[(i, 0)][0].shape != own[(i, 1)][0].shape for _ in [0]):
            # Without the mask the padding would have taken attention: the check can fail.
            assert np.abs(np.concatenate(unmasked) - np.concatenate(want)).max() > 1e-6


@pytest.mark.parametrize("scheme,flags,quant_flags", [("int4", [], []), ("int2", ["--head-allocation", "adakv"], []),
                                                      ("fp8", [], ["--quant-residual", "64"])])
def test_quantised_cache_generates_as_its_numpy_dequantisation(lookm, exported, tmp_path, scheme, flags, quant_flags):
    """A quantised cache (docs/method.md section 12) loaded by lookm_kv generates exactly what a
    cache built from the independent NumPy quantisation of the unquantised cache generates."""
    import reference_quant as rq
    from transformers import DynamicCache
    plain, quantised = tmp_path / "p.h5", tmp_path / "q.h5"
    common = ["--method", "h2o", "--budget", "0.2", *flags]
    run("compress", exported["path"], "-o", plain, *common, check=0)
    run("compress", exported["path"], "-o", quantised, *common, "--quant", scheme, *quant_flags, check=0)
    cache, info = load_cache(quantised)
    plain_cache, plain_info = load_cache(plain)
    want = DynamicCache()
    residual = 64 if scheme == "fp8" else 0
    for i in range(2):
        pk, pv = plain_cache.layers[i].keys[0].double().numpy(), plain_cache.layers[i].values[0].double().numpy()
        pad = plain_info["padding"][i] if plain_info["padding"] else None
        ks, vs = np.zeros_like(pk, np.float32), np.zeros_like(pv, np.float32)
        for h in range(pk.shape[0]):
            n = int((~pad[h]).sum()) if pad is not None else pk.shape[1]
            r = rq.quantise_head(pk[h, :n].astype(np.float32), pv[h, :n].astype(np.float32), scheme, 32, residual,
                                 "float32")
            ks[h, :n], vs[h, :n] = r["keys"], r["values"]
        got_k, got_v = cache.layers[i].keys[0].numpy(), cache.layers[i].values[0].numpy()
        assert np.array_equal(got_k, ks) and np.array_equal(got_v, vs), i
        assert not np.array_equal(got_k, pk.astype(np.float32))  # really quantised
        want.update(torch.from_numpy(ks)[None], torch.from_numpy(vs)[None], i)
    first = torch.tensor(7)
    tokens, logits = greedy_continue(exported["model"], cache, first, info["next_position"], 4, info["padding"])
    want_tokens, want_logits = greedy_continue(exported["model"], want, first, info["next_position"], 4,
                                               info["padding"])
    assert tokens == want_tokens and torch.equal(logits, want_logits)


def test_bfloat16_model_round_trip(lookm, tmp_path):
    model = tiny_llava(dtype=torch.bfloat16)
    ids, pix = prompt()
    path = tmp_path / "bf16.h5"
    export_dump(model, path, ids, pix.to(torch.bfloat16), probes=2)
    with h5py.File(path, "r") as f:
        assert f["layers/0/key"].dtype == np.uint16 and f["layers/0/key"].attrs["dtype"] == "bfloat16"
    run("compress", path, "-o", tmp_path / "c.h5", "--method", "full", check=0)
    cache, _ = load_cache(tmp_path / "c.h5")
    assert cache.layers[0].keys.dtype == torch.bfloat16


def test_h5dump_reads_a_zstd_cache_through_the_plugin(lookm, exported, tmp_path):
    cache_path = tmp_path / "z.h5"
    run("compress", exported["path"], "-o", cache_path, check=0)
    env = {"HDF5_PLUGIN_PATH": str(ROOT / ".build" / "release"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(["h5dump", "-d", "/layers/0/key", "-s", "0,0,0", "-c", "1,1,2", str(cache_path)],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    with h5py.File(cache_path, "r") as f:
        first = f["layers/0/key"][0, 0, :2]
    values = out.stdout.split("(0,0,0):")[1].split("\n")[0]
    np.testing.assert_allclose([float(v) for v in values.split(",")], first, rtol=1e-5)
    plain = subprocess.run(["h5dump", "-d", "/layers/0/key", "-c", "1,1,2", str(cache_path)], capture_output=True, text=True,
                           env={"PATH": "/usr/bin:/bin", "HDF5_PLUGIN_PATH": str(tmp_path)})
    assert "(0,0,0)" not in plain.stdout     # without the plugin h5dump cannot decode it
