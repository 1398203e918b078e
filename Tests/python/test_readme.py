"""The README's Python walkthrough runs as written, and `lookm-export` exports from a local
checkpoint: both on a tiny random LLaVA saved with a processor built here (a word-level tokenizer
and CLIP's image processor on its Pillow backend: nothing is downloaded)."""
import os
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import torch
from PIL import Image

from conftest import ROOT, lookm_bin, run

IMAGE = 300


def tiny_llava_with_processor():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor, PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(3, IMAGE)] + ["<image>"] + [f"x{i}" for i in range(IMAGE + 1, 320)]
    backend = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    images = CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56})
    processor = LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=14, vision_feature_select_strategy="default",
                               image_token="<image>", num_additional_image_tokens=1)
    cfg = LlavaConfig(vision_config=dict(model_type="clip_vision_model", image_size=56, patch_size=14, hidden_size=32,
                                         intermediate_size=64, num_hidden_layers=1, num_attention_heads=2),
                      text_config=dict(model_type="llama", vocab_size=320, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, head_dim=32, bos_token_id=1, eos_token_id=None),
                      image_token_index=IMAGE, image_seq_length=16)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(cfg).eval()
    return model, processor


def pictures(folder):
    paths = []
    for i in range(2):
        rgb = (np.random.RandomState(i).rand(80, 60, 3) * 255).astype(np.uint8)
        paths.append(folder / f"image{i}.png")
        Image.fromarray(rgb).save(paths[-1])
    return paths


PROMPT = "w5 w6 <image> w7 w8 <image> w9 w10 w11"


def walkthrough():
    """The code blocks of the README section "From a model to a compressed cache and back"."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## From a model to a compressed cache"):]
    section = section[:section.index("\n## ", 10)]
    return re.findall(r"```(python|sh)\n(.*?)```", section, re.S)


def test_readme_walkthrough_runs_as_written(lookm, tmp_path, monkeypatch):
    blocks = walkthrough()
    assert [lang for lang, _ in blocks] == ["python", "sh", "python"]
    model, processor = tiny_llava_with_processor()
    monkeypatch.chdir(tmp_path)   # any directory: the package is installed, not found by path
    namespace = {"model": model, "processor": processor, "images": [Image.open(p) for p in pictures(tmp_path)], "prompt": PROMPT}
    exec(compile(blocks[0][1], "README.md (export)", "exec"), namespace)
    assert len(namespace["tokens"]) == 8 and os.path.exists("dump.h5")
    sh = blocks[1][1].replace(".build/release/lookm", lookm_bin())
    subprocess.run(["bash", "-euo", "pipefail", "-c", sh], check=True, capture_output=True)
    exec(compile(blocks[2][1], "README.md (load)", "exec"), namespace)
    assert len(namespace["tokens"]) == 32 and torch.isfinite(namespace["first_logits"]).all()


def test_lookm_export_command(lookm, tmp_path):
    model, processor = tiny_llava_with_processor()
    checkpoint = tmp_path / "checkpoint"
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    command = shutil.which("lookm-export", path=os.path.dirname(sys.executable))
    assert command, "lookm-export is not installed in this environment (scripts/setup.sh installs it)"
    images = pictures(tmp_path)
    out = tmp_path / "dump.h5"
    p = subprocess.run([command, "--model", str(checkpoint), "--image", str(images[0]), "--image", str(images[1]), "--prompt", PROMPT,
                        "-o", str(out), "--probes", "3", "--attn", "sdpa"], capture_output=True, text=True, cwd=tmp_path,
                       env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert p.returncode == 0, p.stderr
    run("inspect", out, check=0)
    with h5py.File(out, "r") as f:
        assert f["tokens/modality"][...].sum() == 32 and f["probe/position"].shape == (3,)
    assert subprocess.run([command, "--help"], capture_output=True).returncode == 0
