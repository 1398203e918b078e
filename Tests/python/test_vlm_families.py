"""The exporter and loader against VLM families beyond LLaVA-1.5, each a tiny random model built
from its config (nothing is downloaded), compared with the model's own `generate`: exported keys
equal the model's cache, the probe tokens are `generate`'s, a `--method full` cache reloads to the
same tokens and first-step logits, and a LOOK-M cache generates.

Qwen2-VL and Qwen2.5-VL use M-RoPE: after images, text positions are not token indices, and
decoding continues at `seq_len + rope_deltas`. The dump records that position (`next_position`,
format version 2), compress copies it, and `load_cache`'s `info["next_position"]` carries it."""
import json

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest
import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLConfig, Qwen2VLForConditionalGeneration

from conftest import run
from lookm_kv import export_dump, greedy_continue, load_cache

IMAGE, VIDEO, VSTART, VEND = 300, 301, 302, 303
GRIDS = [[1, 8, 12], [1, 6, 6]]   # (t, h, w) patches per image: 24 and 9 tokens after the 2x2 merge
STEPS = 6


def tiny_qwen(kind, attn):
    """2 text layers (4 query heads, 2 kv heads, head_dim 32, M-RoPE sections 4/6/6) and a
    1-block vision tower. Text weights are scaled by 1.5 so that greedy tokens vary: with the default
    initialisation every step would pick the same token, and a wrong position would go unseen."""
    text = dict(vocab_size=320, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=4096, bos_token_id=1, eos_token_id=None, pad_token_id=0,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]})
    ids = dict(image_token_id=IMAGE, video_token_id=VIDEO, vision_start_token_id=VSTART, vision_end_token_id=VEND)
    if kind == "qwen2-vl":
        vision = dict(depth=1, embed_dim=32, hidden_size=128, num_heads=2, mlp_ratio=2, patch_size=14, spatial_merge_size=2,
                      temporal_patch_size=2, in_channels=3)
        model = Qwen2VLForConditionalGeneration, Qwen2VLConfig(text_config=text, vision_config=vision, **ids)
    else:
        vision = dict(depth=1, hidden_size=32, out_hidden_size=128, intermediate_size=64, num_heads=2, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, in_channels=3, window_size=56, fullatt_block_indexes=[0])
        model = Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)
    torch.manual_seed(0)
    m = model[0](model[1]).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "language_model" in name and name.endswith("weight") and p.ndim == 2:
                p.mul_(1.5)
    m.set_attn_implementation(attn)
    m.generation_config.eos_token_id = None
    m.generation_config.pad_token_id = 0
    return m


def qwen_inputs():
    """What Qwen2-VL's processor returns for two images in a chat prompt (image tokens expanded,
    `image_grid_thw`, `mm_token_type_ids`), built by hand: its tokenizer cannot be downloaded."""
    ids = [1] + list(range(10, 20))
    for t, h, w in GRIDS:
        ids += [VSTART] + [IMAGE] * (t * h * w // 4) + [VEND] + list(range(40, 45))
    ids += list(range(60, 70))
    input_ids = torch.tensor([ids])
    torch.manual_seed(1)
    return dict(input_ids=input_ids, pixel_values=torch.randn(sum(t * h * w for t, h, w in GRIDS), 3 * 2 * 14 * 14),
                image_grid_thw=torch.tensor(GRIDS), mm_token_type_ids=(input_ids == IMAGE).long())


@pytest.fixture(scope="module", params=[("qwen2-vl", "eager"), ("qwen2-vl", "sdpa"), ("qwen2.5-vl", "eager"),
                                        ("qwen2.5-vl", "sdpa")], ids=lambda p: f"{p[0]}-{p[1]}")
def qwen(request, tmp_path_factory):
    kind, attn = request.param
    model, inputs = tiny_qwen(kind, attn), qwen_inputs()
    d = tmp_path_factory.mktemp(f"{kind}-{attn}")
    path = d / "dump.h5"
    probe_tokens = export_dump(model, path, **inputs, probes=STEPS, store_query=True)
    with torch.no_grad():
        own = model(**inputs, use_cache=True)
        gen = model.generate(**inputs, max_new_tokens=STEPS + 1, do_sample=False, output_scores=True,
                             return_dict_in_generate=True)
    return dict(model=model, inputs=inputs, path=path, dir=d, probe_tokens=probe_tokens, own=own,
                generated=gen.sequences[0, inputs["input_ids"].shape[1]:].tolist(), scores=gen.scores)


def test_export_matches_the_model_and_generate(lookm, qwen):
    run("inspect", qwen["path"], check=0)
    L = qwen["inputs"]["input_ids"].shape[1]
    assert len(set(qwen["generated"])) > 2, f"greedy tokens do not vary: {qwen['generated']}"
    assert qwen["probe_tokens"] == qwen["generated"][:STEPS]
    with h5py.File(qwen["path"], "r") as f:
        assert f.attrs["seq_len"] == L and f.attrs["format_version"] == 2 and f.attrs["extensions"] == "next-position"
        for i in range(2):
            layer = qwen["own"].cache.layers[i]
            assert np.array_equal(f[f"layers/{i}/key"][...], layer.keys[0].numpy())
            assert np.array_equal(f[f"layers/{i}/value"][...], layer.values[0].numpy())


def test_next_position_is_the_rope_index(lookm, qwen):
    """The recorded next position and probe positions are where `get_rope_index` puts the text
    after the prompt: one past the last prompt token's (text) position."""
    inputs = qwen["inputs"]
    positions, deltas = qwen["model"].model.get_rope_index(inputs["input_ids"], image_grid_thw=inputs["image_grid_thw"],
                                                           mm_token_type_ids=inputs["mm_token_type_ids"])
    L = inputs["input_ids"].shape[1]
    with h5py.File(qwen["path"], "r") as f:
        nxt = int(f.attrs["next_position"])
        probes = list(f["probe/position"][:])
    assert nxt == L + int(deltas[0, 0]) == int(positions[:, 0, -1].max()) + 1
    assert nxt < L   # images advance M-RoPE positions by less than one per token
    assert probes == list(range(nxt, nxt + STEPS))
    report = json.loads(run("inspect", "--json", qwen["path"], check=0).stdout)
    assert report["next_position"] == nxt and report["extensions"] == ["next-position"]


def test_full_cache_reloads_to_generate(lookm, qwen):
    cache_path = qwen["dir"] / "full.h5"
    run("compress", qwen["path"], "-o", cache_path, "--method", "full", "--force", check=0)
    with h5py.File(cache_path, "r") as f, h5py.File(qwen["path"], "r") as d:
        assert f.attrs["next_position"] == d.attrs["next_position"] and f.attrs["format_version"] == 2
    cache, info = load_cache(cache_path)
    first = qwen["generated"][0]
    tokens, logits = greedy_continue(qwen["model"], cache, first, info["next_position"], STEPS)
    assert tokens == qwen["generated"][1:STEPS + 1]
    assert torch.max(torch.abs(logits - qwen["scores"][1][0].float())).item() < 1e-4
    # Continuing at seq_len instead (what a loader without next_position did) goes wrong.
    cache, _ = load_cache(cache_path)
    _, wrong = greedy_continue(qwen["model"], cache, first, info["seq_len"], 1)
    assert torch.max(torch.abs(wrong - qwen["scores"][1][0].float())).item() > 1e-3


def test_lookm_cache_generates_and_report_uses_the_probes(lookm, qwen):
    cache_path = qwen["dir"] / "lookm.h5"
    run("compress", qwen["path"], "-o", cache_path, "--budget", "0.2", "--force", check=0)
    cache, info = load_cache(cache_path)
    tokens, logits = greedy_continue(qwen["model"], cache, qwen["generated"][0], info["next_position"], 4)
    assert len(tokens) == 4 and torch.isfinite(logits).all()
    report = json.loads(run("report", cache_path, "--reference", qwen["path"], "--format", "json", check=0).stdout)
    assert report["fidelity"]["query_source"].startswith("probe")


# ---------------------------------------------------------------------------------------------
# Gemma3: sliding-window layers shorter than the prompt, and image tokens that attend to each
# other both ways (token_type_ids).

GEMMA_WINDOW = 16


def tiny_gemma3(attn):
    """4 text layers alternating sliding (window 16) and full attention, head_dim 32, GQA 2:1, and
    a 1-layer SigLIP tower with 4 tokens per image. The text weights are redrawn with std 0.02 and
    the output head untied from the embeddings: tied, greedy decoding repeats the input token."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration
    text = dict(vocab_size=320, hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, head_dim=32, sliding_window=GEMMA_WINDOW, max_position_embeddings=4096, bos_token_id=1,
                eos_token_id=None, pad_token_id=0,
                layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"])
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=56, patch_size=14)
    cfg = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4, image_token_index=IMAGE,
                       boi_token_index=VSTART, eoi_token_index=VEND)
    torch.manual_seed(0)
    m = Gemma3ForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "language_model" in name and name.endswith("weight"):
                p.normal_(0, 0.02)
        m.lm_head.weight = torch.nn.Parameter(torch.randn(m.lm_head.weight.shape, generator=torch.Generator().manual_seed(5)) * 0.05)
    m.set_attn_implementation(attn)
    m.generation_config.eos_token_id = None
    m.generation_config.pad_token_id = 0
    return m


def gemma_inputs():
    """Two images of 4 tokens in a 43-token prompt (longer than the window), with the processor's
    `token_type_ids` (1 on image tokens)."""
    ids = [1] + list(range(10, 20)) + [VSTART] + [IMAGE] * 4 + [VEND] + list(range(40, 50)) + [VSTART] + [IMAGE] * 4 + [VEND] \
        + list(range(60, 70))
    input_ids = torch.tensor([ids])
    torch.manual_seed(1)
    return dict(input_ids=input_ids, pixel_values=torch.randn(2, 3, 56, 56), token_type_ids=(input_ids == IMAGE).long())


@pytest.fixture(scope="module", params=["eager", "sdpa"])
def gemma(request, tmp_path_factory):
    model, inputs = tiny_gemma3(request.param), gemma_inputs()
    d = tmp_path_factory.mktemp(f"gemma3-{request.param}")
    path = d / "dump.h5"
    probe_tokens = export_dump(model, path, **inputs, probes=STEPS)
    with torch.no_grad():
        own = model(**inputs, use_cache=True, output_attentions=request.param == "eager")
        gen = model.generate(**inputs, max_new_tokens=STEPS + 1, do_sample=False, output_scores=True,
                             return_dict_in_generate=True)
    return dict(model=model, inputs=inputs, path=path, dir=d, probe_tokens=probe_tokens, own=own, attn=request.param,
                generated=gen.sequences[0, inputs["input_ids"].shape[1]:].tolist(), scores=gen.scores)


def test_gemma3_dump_records_windows_and_the_real_mask(lookm, gemma):
    run("inspect", gemma["path"], check=0)
    L = gemma["inputs"]["input_ids"].shape[1]
    assert L > GEMMA_WINDOW and len(set(gemma["generated"])) > 2, gemma["generated"]
    assert gemma["probe_tokens"] == gemma["generated"][:STEPS]
    with h5py.File(gemma["path"], "r") as f:
        assert f.attrs["format_version"] == 2 and f.attrs["extensions"] == "sliding-window"
        for i in range(4):
            g, layer = f[f"layers/{i}"], gemma["own"].cache.layers[i]
            held = layer.keys.shape[2]
            if i % 2 == 0:
                assert g.attrs["sliding_window"] == GEMMA_WINDOW and held == GEMMA_WINDOW - 1
            else:
                assert "sliding_window" not in g.attrs and held == L
            # Every prompt position is recorded; the positions the model holds are its cache, bit for bit.
            assert g["key"].shape[1] == L
            assert np.array_equal(g["key"][:, L - held:], layer.keys[0].numpy())
            assert np.array_equal(g["value"][:, L - held:], layer.values[0].numpy())
            if gemma["attn"] == "eager":
                weights = gemma["own"].attentions[i][0].double()
                np.testing.assert_allclose(g["attn_score"][...], weights.sum(dim=1).numpy(), rtol=1e-5, atol=1e-6)


def test_gemma3_sdpa_scores_follow_the_bidirectional_image_mask(lookm, gemma, tmp_path):
    """The other attention implementation's export has the same scores: eager takes them from the
    model's weights, sdpa computes them from the queries and the mask the model was given."""
    other = tmp_path / "other.h5"
    export_dump(tiny_gemma3("eager" if gemma["attn"] == "sdpa" else "sdpa"), other, **gemma["inputs"], probes=0)
    with h5py.File(other, "r") as a, h5py.File(gemma["path"], "r") as b:
        for i in range(4):
            np.testing.assert_allclose(b[f"layers/{i}/attn_score"][...], a[f"layers/{i}/attn_score"][...], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(b[f"layers/{i}/window_attn"][...], a[f"layers/{i}/window_attn"][...], rtol=1e-5, atol=1e-6)


def test_gemma3_full_cache_reloads_to_generate(lookm, gemma):
    cache_path = gemma["dir"] / "full.h5"
    run("compress", gemma["path"], "-o", cache_path, "--method", "full", "--force", check=0)
    with pytest.raises(ValueError, match="config=model.config"):
        load_cache(cache_path)
    cache, info = load_cache(cache_path, config=gemma["model"].config)
    assert [cache.layers[i].keys.shape[2] for i in range(4)] == [GEMMA_WINDOW - 1, info["seq_len"], GEMMA_WINDOW - 1, info["seq_len"]]
    tokens, logits = greedy_continue(gemma["model"], cache, gemma["generated"][0], info["next_position"], STEPS)
    assert tokens == gemma["generated"][1:STEPS + 1]
    assert torch.max(torch.abs(logits - gemma["scores"][1][0].float())).item() < 1e-4


def test_gemma3_lookm_cache_keeps_windows_and_generates(lookm, gemma):
    cache_path = gemma["dir"] / "lookm.h5"
    run("compress", gemma["path"], "-o", cache_path, "--budget", "0.2", "--force", check=0)
    L = gemma["inputs"]["input_ids"].shape[1]
    with h5py.File(cache_path, "r") as f:
        kept = [f[f"layers/{i}/key"].shape[1] for i in range(4)]
        assert kept == [GEMMA_WINDOW - 1, int(L * 0.2), GEMMA_WINDOW - 1, int(L * 0.2)]
        assert list(f["layers/0/position"][0]) == list(range(L - GEMMA_WINDOW + 1, L))
    cache, info = load_cache(cache_path, config=gemma["model"].config)
    tokens, logits = greedy_continue(gemma["model"], cache, gemma["generated"][0], info["next_position"], 4)
    assert len(tokens) == 4 and torch.isfinite(logits).all()
    report = json.loads(run("report", cache_path, "--reference", gemma["path"], "--format", "json", "--by", "layer", check=0).stdout)
    rows = {r["layer"]: r for r in report["fidelity"]["layers"]}
    assert rows[0]["output_error"] == 0 and rows[2]["output_error"] == 0   # the window is what the model holds
    assert rows[1]["output_error"] > 0
    sweep = json.loads(run("sweep", gemma["path"], "--methods", "lookm,h2o", "--budgets", "0.2", "--format", "json", check=0).stdout)
    assert all(r["copied_layers"] == 2 for r in sweep["rows"])


# ---------------------------------------------------------------------------------------------
# The families with plain 1-D rotary positions and full attention: LLaVA-1.5, LLaVA-NeXT (anyres,
# `image_sizes`), LLaVA-OneVision, Idefics3 (`pixel_attention_mask`), InternVL. Image token counts
# come from the model itself, as its processor would compute them.

TEXT = dict(vocab_size=320, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=4096, bos_token_id=1, eos_token_id=None, pad_token_id=0)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
PINPOINTS = [[56, 112], [112, 56], [112, 112]]


def varied(model):
    """Redraws the text weights (std 0.05) and unties the output head, so greedy tokens vary."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "language_model" in name and name.endswith("weight") and p.ndim == 2:
                p.normal_(0, 0.05)
        model.lm_head.weight = torch.nn.Parameter(torch.randn(model.lm_head.weight.shape, generator=torch.Generator().manual_seed(5)) * 0.05)
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model.eval()


def prompt_ids(image_tokens):
    ids = [1] + list(range(10, 20))
    for n in image_tokens:
        ids += [IMAGE] * n + list(range(40, 46))
    return torch.tensor([ids + list(range(60, 70))])


def build_family(name):
    import transformers as T
    torch.manual_seed(0)
    if name == "llava-1.5":
        cfg = T.LlavaConfig(vision_config=dict(model_type="clip_vision_model", image_size=56, patch_size=14, **VISION),
                            text_config=dict(model_type="llama", head_dim=32, **TEXT), image_token_index=IMAGE, image_seq_length=16)
        model = varied(T.LlavaForConditionalGeneration(cfg))
        torch.manual_seed(1)
        return model, dict(input_ids=prompt_ids([16, 16]), pixel_values=torch.randn(2, 3, 56, 56))
    if name in ("llava-next", "llava-onevision"):
        if name == "llava-next":
            cfg = T.LlavaNextConfig(vision_config=dict(model_type="clip_vision_model", image_size=56, patch_size=14, **VISION),
                                    text_config=dict(model_type="llama", head_dim=32, **TEXT), image_token_index=IMAGE,
                                    image_grid_pinpoints=PINPOINTS, vision_feature_layer=-1)
            model = varied(T.LlavaNextForConditionalGeneration(cfg))
        else:
            cfg = T.LlavaOnevisionConfig(vision_config=dict(model_type="siglip_vision_model", image_size=56, patch_size=14, **VISION),
                                         text_config=dict(model_type="qwen2", **TEXT), image_token_index=IMAGE,
                                         image_grid_pinpoints=PINPOINTS, vision_feature_layer=-1)
            model = varied(T.LlavaOnevisionForConditionalGeneration(cfg))
        torch.manual_seed(1)
        pix, sizes = torch.randn(2, 5, 3, 56, 56), torch.tensor([[100, 60], [50, 110]])
        with torch.no_grad():
            feats = model.model.get_image_features(pixel_values=pix, image_sizes=sizes)
        counts = [f.shape[0] for f in getattr(feats, "pooler_output", feats)]
        return model, dict(input_ids=prompt_ids(counts), pixel_values=pix, image_sizes=sizes)
    if name == "idefics3":
        cfg = T.Idefics3Config(vision_config=dict(image_size=56, patch_size=14, **VISION), text_config=dict(model_type="llama", head_dim=32, **TEXT),
                               image_token_id=IMAGE, scale_factor=2)
        model = varied(T.Idefics3ForConditionalGeneration(cfg))
        torch.manual_seed(1)
        return model, dict(input_ids=prompt_ids([4, 4]), pixel_values=torch.randn(1, 2, 3, 56, 56),
                           pixel_attention_mask=torch.ones(1, 2, 56, 56, dtype=torch.bool))
    cfg = T.InternVLConfig(vision_config=dict(image_size=[56, 56], patch_size=[14, 14], **VISION), text_config=dict(model_type="qwen2", **TEXT),
                           image_token_id=IMAGE, downsample_ratio=0.5)
    model = varied(T.InternVLForConditionalGeneration(cfg))
    torch.manual_seed(1)
    return model, dict(input_ids=prompt_ids([4, 4]), pixel_values=torch.randn(2, 3, 56, 56))


FAMILIES = [(f, a) for f in ["llava-1.5", "llava-next", "llava-onevision", "idefics3", "internvl"] for a in ["eager", "sdpa"]]


@pytest.mark.parametrize("family,attn", FAMILIES, ids=[f"{f}-{a}" for f, a in FAMILIES])
def test_family_round_trip_matches_generate(lookm, tmp_path, family, attn):
    model, inputs = build_family(family)
    model.set_attn_implementation(attn)
    L = inputs["input_ids"].shape[1]
    path = tmp_path / "dump.h5"
    probe_tokens = export_dump(model, path, **inputs, probes=STEPS)
    with torch.no_grad():
        own = model(**inputs, use_cache=True)
        gen = model.generate(**inputs, max_new_tokens=STEPS + 1, do_sample=False, output_scores=True, return_dict_in_generate=True)
    generated = gen.sequences[0, L:].tolist()
    assert len(set(generated)) > 1, generated
    assert probe_tokens == generated[:STEPS]
    run("inspect", path, check=0)
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == 1 and f["tokens/modality"][...].sum() == int((inputs["input_ids"] == IMAGE).sum())
        for i in range(2):
            assert np.array_equal(f[f"layers/{i}/key"][...], own.cache.layers[i].keys[0].numpy())
    run("compress", path, "-o", tmp_path / "full.h5", "--method", "full", check=0)
    cache, info = load_cache(tmp_path / "full.h5", config=model.config)
    tokens, logits = greedy_continue(model, cache, generated[0], info["next_position"], STEPS)
    assert tokens == generated[1:STEPS + 1]
    assert torch.max(torch.abs(logits - gen.scores[1][0].float())).item() < 1e-4
    run("compress", path, "-o", tmp_path / "lookm.h5", "--budget", "0.2", check=0)
    cache, info = load_cache(tmp_path / "lookm.h5", config=model.config)
    tokens, logits = greedy_continue(model, cache, generated[0], info["next_position"], 3)
    assert len(tokens) == 3 and torch.isfinite(logits).all()
