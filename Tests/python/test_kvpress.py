"""lookm against NVIDIA's kvpress (pinned in requirements-kvpress.txt, its own environment
.venv-kvpress): kvpress's PyramidKV and Ada-KV presses run unmodified during the prefill of a tiny
random LLaVA (Tests/python/kvpress_run.py); `lookm compress` runs on the dump exported from the same
model with the definitions of docs/method.md sections 8 and 9; every layer and kv head must keep the
same positions."""
import json
import os
import subprocess

import h5py
import hdf5plugin  # noqa: F401
import pytest
import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from conftest import ROOT, run
from lookm_kv import export_dump

KVPRESS_PYTHON = ROOT / ".venv-kvpress" / "bin" / "python"
IMAGE = 300
WINDOW = 16  # kvpress's window_size: SnapKV's observation window, kept whole; lookm --window/--recent


def tiny_llava():
    """3 layers, 4 query heads on 2 kv heads (GQA), one 576-token image. A wider initialisation
    than transformers' default makes the attention peaked, so scores do not sit within rounding of
    each other (lookm scores in Double, kvpress in float32)."""
    vision = CLIPVisionConfig(image_size=336, patch_size=14, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                              num_attention_heads=2, projection_dim=32)
    text = LlamaConfig(vocab_size=320, hidden_size=128, intermediate_size=256, num_hidden_layers=3,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=4096,
                       initializer_range=0.15)
    torch.manual_seed(3)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=IMAGE, image_seq_length=576)
    return LlavaForConditionalGeneration(config).eval()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    if not KVPRESS_PYTHON.exists():
        pytest.fail(f"{KVPRESS_PYTHON} is missing: scripts/setup.sh creates it (requirements-kvpress.txt)")
    d = tmp_path_factory.mktemp("kvpress")
    model = tiny_llava()
    ids = torch.tensor([[1] + list(range(10, 40)) + [IMAGE] * 576 + list(range(40, 100))])
    torch.manual_seed(4)
    pix = torch.randn(1, 3, 336, 336)
    model.save_pretrained(d / "model")
    seen = {}
    hook = model.model.language_model.register_forward_pre_hook(
        lambda m, a, kw: seen.update(embeds=kw["inputs_embeds"].detach().clone()), with_kwargs=True)
    model.set_attn_implementation("eager")
    try:
        export_dump(model, d / "dump.h5", ids, pix, probes=0, store_query=True)
    finally:
        hook.remove()
    torch.save({"inputs_embeds": seen["embeds"]}, d / "inputs.pt")
    return d, ids.shape[1]


def kvpress_kept(d, spec):
    p = subprocess.run([str(KVPRESS_PYTHON), str(ROOT / "Tests/python/kvpress_run.py"), str(d / "model"),
                        str(d / "inputs.pt"), json.dumps(spec)], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout)["layers"]


def lookm_kept(cache):
    with h5py.File(cache, "r") as c:
        out = []
        for i in range(c.attrs["num_layers"]):
            layer = c[f"layers/{i}"]
            G = c.attrs["num_kv_heads"]
            if "heads" in layer:
                out.append([sorted(layer[f"heads/{g}/position"][0].tolist()) for g in range(G)])
            else:
                out.append([sorted(layer["position"][g].tolist()) for g in range(G)])
        return out


def compare(kv, lk):
    assert len(kv) == len(lk)
    for i, (a, b) in enumerate(zip(kv, lk)):
        for g, (x, y) in enumerate(zip(a, b)):
            assert len(x) == len(y), f"layer {i} kv head {g}: kvpress keeps {len(x)}, lookm {len(y)}"
            assert x == y, f"layer {i} kv head {g}: {len(set(x) ^ set(y))} positions differ"


SNAPKV = ["--method", "snapkv", "--window", str(WINDOW), "--kernel", "5", "--recent", str(WINDOW)]


def lookm_compress_kept(d, tmp_path, ratio, *flags):
    """What `lookm compress` keeps at kvpress's `compression_ratio`, with these flags."""
    cache = tmp_path / "c.h5"
    run("compress", d / "dump.h5", "-o", cache, "--budget", repr(1 - ratio), *flags, check=0)
    return lookm_kept(cache)


@pytest.mark.parametrize("ratio,beta", [(0.5, 4), (0.75, 3)])
def test_pyramidkv_keeps_what_kvpress_keeps(lookm, prepared, tmp_path, ratio, beta):
    d, L = prepared
    kv = kvpress_kept(d, {"press": "pyramid", "compression_ratio": ratio, "window_size": WINDOW, "kernel_size": 5,
                          "beta": beta})
    lk = lookm_compress_kept(d, tmp_path, ratio, *SNAPKV, "--allocation", "pyramid", "--pyramid-beta", str(beta),
                             "--pyramid-window", str(WINDOW))
    assert len({len(layer[0]) for layer in lk}) == 3  # a real pyramid: three different layer budgets
    compare(kv, lk)


@pytest.mark.parametrize("ratio,alpha", [(0.5, 0.2), (0.75, 0.2), (0.75, 0.6)])
def test_adakv_keeps_what_kvpress_keeps(lookm, prepared, tmp_path, ratio, alpha):
    d, L = prepared
    kv = kvpress_kept(d, {"press": "adakv", "compression_ratio": ratio, "window_size": WINDOW, "kernel_size": 5,
                          "alpha_safeguard": alpha})
    lk = lookm_compress_kept(d, tmp_path, ratio, *SNAPKV, "--head-allocation", "adakv", "--adakv-floor", repr(alpha))
    assert any(len(layer[0]) != len(layer[1]) for layer in lk)  # heads really keep different counts
    compare(kv, lk)


@pytest.mark.parametrize("press,flags", [
    ({"press": "snapkv", "window_size": WINDOW, "kernel_size": 5}, SNAPKV),
    ({"press": "knorm"}, ["--method", "knorm", "--recent", "0"]),
    ({"press": "streaming", "n_sink": 4}, ["--method", "streaming", "--sinks", "4"]),
])
def test_existing_selectors_agree_with_kvpress_where_docs_say(lookm, prepared, tmp_path, press, flags):
    """docs/method.md's kvpress table: these selectors, with these flags, keep what kvpress keeps."""
    d, L = prepared
    compare(kvpress_kept(d, dict(press, compression_ratio=0.75)), lookm_compress_kept(d, tmp_path, 0.75, *flags))
