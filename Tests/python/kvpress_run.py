"""Runs one of NVIDIA kvpress's presses, unmodified, during the prefill of a saved transformers
model, and prints which prompt positions every layer and kv head keeps, as JSON.

Run by Tests/python/test_kvpress.py with .venv-kvpress's Python (kvpress pins transformers < 5.3):

    python kvpress_run.py MODEL_DIR INPUTS.pt '{"press": "pyramid", "compression_ratio": 0.5, ...}'

INPUTS.pt holds the language model's `inputs_embeds` (text embeddings with the projected image
features in place), computed where the model was built: the vision tower's parameter names differ
between transformers releases, the language model's do not, and kvpress only sees the latter.

Presses that gather (PyramidKV) are read by matching each kept key row to the prompt's rows;
presses that mask (Ada-KV) by the complement of the positions they mask (`module.masked_key_indices`).
"""
import json
import sys

import torch
from transformers import LlavaForConditionalGeneration
from kvpress import AdaKVPress, KnormPress, PyramidKVPress, SnapKVPress, StreamingLLMPress


def make_press(spec):
    if spec["press"] == "pyramid":
        return PyramidKVPress(compression_ratio=spec["compression_ratio"], window_size=spec["window_size"],
                              kernel_size=spec["kernel_size"], beta=spec["beta"])
    if spec["press"] == "adakv":
        scorer = SnapKVPress(compression_ratio=spec["compression_ratio"], window_size=spec["window_size"],
                             kernel_size=spec["kernel_size"])
        return AdaKVPress(press=scorer, alpha_safeguard=spec["alpha_safeguard"])
    if spec["press"] == "snapkv":
        return SnapKVPress(compression_ratio=spec["compression_ratio"], window_size=spec["window_size"],
                           kernel_size=spec["kernel_size"])
    if spec["press"] == "knorm":
        return KnormPress(compression_ratio=spec["compression_ratio"])
    if spec["press"] == "streaming":
        return StreamingLLMPress(compression_ratio=spec["compression_ratio"], n_sink=spec["n_sink"])
    raise SystemExit(f"unknown press {spec['press']}")


def main():
    model_dir, inputs_path, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    inputs = torch.load(inputs_path)
    press = make_press(spec)
    kept = {}
    compress = press.compress

    def recording(module, hidden_states, keys, values, attentions, kwargs):
        out_keys, out_values = compress(module, hidden_states, keys, values, attentions, kwargs)
        heads, L = keys.shape[1], keys.shape[2]
        if isinstance(press, AdaKVPress):
            _, head, position = module.masked_key_indices
            masked = set(zip(head.tolist(), position.tolist()))
            kept[module.layer_idx] = [[t for t in range(L) if (g, t) not in masked] for g in range(heads)]
        else:
            layer = []
            for g in range(heads):
                rows = {keys[0, g, t].numpy().tobytes(): t for t in range(L)}
                layer.append(sorted(rows[r.numpy().tobytes()] for r in out_keys[0, g]))
            kept[module.layer_idx] = layer
        return out_keys, out_values

    press.compress = recording
    with torch.no_grad(), press(model):
        model(inputs_embeds=inputs["inputs_embeds"])
    json.dump({"layers": [kept[i] for i in sorted(kept)]}, sys.stdout)


if __name__ == "__main__":
    main()
