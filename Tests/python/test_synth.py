"""`lookm synth` output, checked from h5py and NumPy: the spec's layout, and realistic structure."""
import time

import h5py
import numpy as np
import pytest

from conftest import synth

SHAPE = ["--layers", "2", "--heads", "4", "--head-dim", "32", "--images", "2", "--image-tokens", "49",
         "--text-tokens", "60"]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_layout_matches_the_spec(lookm, tmp_path, dtype):
    path = synth(tmp_path / "d.h5", *SHAPE, "--kv-heads", "2", "--dtype", dtype, "--query", "--probes", "3",
                 "--window", "8")
    L = 2 * 49 + 60
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["format"] == "lookm-kv-dump" and a["format_version"] == 1
        assert (a["num_layers"], a["num_heads"], a["num_kv_heads"], a["head_dim"], a["seq_len"]) == (2, 4, 2, 32, L)
        assert isinstance(a["model"], str)
        assert f["tokens/modality"].dtype == np.uint8 and f["tokens/modality"].shape == (L,)
        assert f["tokens/segment"].dtype == np.int32 and f["tokens/ids"].dtype == np.int64
        assert list(f["probe/position"][:]) == [L, L + 1, L + 2]
        stored = {"float16": np.float16, "bfloat16": np.uint16, "float32": np.float32}[dtype]
        for i in range(2):
            g = f[f"layers/{i}"]
            for name, shape in [("key", (2, L, 32)), ("value", (2, L, 32)), ("query", (4, L, 32)),
                                ("probe_query", (4, 3, 32))]:
                assert g[name].shape == shape and g[name].dtype == stored, name
                assert (g[name].attrs.get("dtype") == "bfloat16") == (dtype == "bfloat16")
            assert g["attn_score"].shape == (4, L) and g["attn_score"].dtype == np.float32
            assert g["window_attn"].shape == (4, 8, L) and g["window_attn"].dtype == np.float32


def as_float(d):
    x = d[...]
    if d.attrs.get("dtype") == "bfloat16":
        x = (x.astype(np.uint32) << 16).view(np.float32)
    return x.astype(np.float64)


def causal_attention(q, k, scale):
    logits = q @ k.T * scale
    L = logits.shape[0]
    logits[np.triu_indices(L, 1)] = -np.inf
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("dtype,kv", [("float16", "4"), ("bfloat16", "2")])
def test_scores_are_exact_and_structure_is_realistic(lookm, tmp_path, dtype, kv):
    path = synth(tmp_path / "d.h5", *SHAPE, "--kv-heads", kv, "--dtype", dtype, "--query", "--window", "6",
                 "--seed", "7")
    with h5py.File(path, "r") as f:
        scale = f.attrs["attn_scale"]
        H, G = f.attrs["num_heads"], f.attrs["num_kv_heads"]
        modality = f["tokens/modality"][:]
        segment = f["tokens/segment"][:]
        text, image = modality == 0, modality == 1
        for i in range(f.attrs["num_layers"]):
            g = f[f"layers/{i}"]
            q, k, scores, window = as_float(g["query"]), as_float(g["key"]), g["attn_score"][:], g["window_attn"][:]
            for h in range(H):
                p = causal_attention(q[h], k[h // (H // G)], scale)
                want = p.sum(axis=0)
                # attn_score = causal-softmax column sums of the stored queries and keys.
                np.testing.assert_allclose(scores[h], want, rtol=1e-4, atol=1e-6)
                np.testing.assert_allclose(window[h], p[-6:], rtol=1e-4, atol=1e-7)
                # The first tokens are attention sinks: token 0 the strongest, far above the mean.
                assert np.argmax(scores[h]) == 0
                assert scores[h][0] > 20 * scores[h].mean()
                assert scores[h][:3].sum() > 0.25 * scores[h].sum()
                # Text tokens draw more attention per token than image tokens (sink aside).
                per_text = scores[h][text][1:].mean()
                assert per_text > 2 * scores[h][image].mean(), (i, h)
            # Neighbouring image patches have similar keys: more than patches of another image.
            for kh in range(G):
                x = k[kh] / np.linalg.norm(k[kh], axis=1, keepdims=True)
                img0 = np.where(segment == 0)[0]
                img1 = np.where(segment == 1)[0]
                neighbours = np.mean([x[a] @ x[a + 1] for a in img0[:-1]])
                across = np.mean([x[a] @ x[b] for a, b in zip(img0, img1)])
                assert neighbours > across + 0.2, (i, kh, neighbours, across)


def test_same_seed_same_bytes_other_seed_other_tensors(lookm, tmp_path):
    a = synth(tmp_path / "a.h5", *SHAPE, "--seed", "3", "--threads", "1")
    time.sleep(1.1)   # a second apart: HDF5's object timestamps would show
    b = synth(tmp_path / "b.h5", *SHAPE, "--seed", "3", "--threads", "2")
    c = synth(tmp_path / "c.h5", *SHAPE, "--seed", "4")
    assert a.read_bytes() == b.read_bytes()
    with h5py.File(a, "r") as fa, h5py.File(c, "r") as fc:
        assert not np.array_equal(fa["layers/0/key"][...], fc["layers/0/key"][...])


@pytest.mark.parametrize("codec", ["zstd", "deflate"])
def test_compressed_synth_reads_in_h5py_equal_to_uncompressed(lookm, tmp_path, codec):
    import hdf5plugin  # noqa: F401  (registers zstd for h5py)
    plain = synth(tmp_path / "plain.h5", *SHAPE, "--query")
    packed = synth(tmp_path / "packed.h5", *SHAPE, "--query", "--codec", codec)
    with h5py.File(plain, "r") as fp, h5py.File(packed, "r") as fz:
        for name in ["key", "value", "query", "attn_score"]:
            d = fz[f"layers/1/{name}"]
            assert d.compression == ("gzip" if codec == "deflate" else "unknown")
            if codec == "zstd":
                assert "32015" in map(str, d._filters)
            assert d.shuffle
            assert np.array_equal(fp[f"layers/1/{name}"][...], d[...])
