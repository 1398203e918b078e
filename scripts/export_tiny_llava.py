#!/usr/bin/env python3
"""A dump exported from a real transformers LLaVA, tiny and randomly initialised from a config
(nothing is downloaded): the same model as Tests/python/test_transformers.py, for sweeps and demos
on a model's own keys, values, queries and attention rather than synthetic ones.

    .venv/bin/python scripts/export_tiny_llava.py -o bench-data/tiny-llava.h5 [--layers 4] [--seed 0]
"""
import argparse

import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from lookm_kv import export_dump

IMAGE = 300


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    # CLIP tower with 336-pixel images and 14-pixel patches (576 image tokens), a Llama with head_dim 128.
    vision = CLIPVisionConfig(image_size=336, patch_size=14, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, projection_dim=32)
    text = LlamaConfig(vocab_size=320, hidden_size=512, intermediate_size=1024, num_hidden_layers=a.layers,
                       num_attention_heads=4, num_key_value_heads=4, head_dim=128, max_position_embeddings=4096)
    torch.manual_seed(a.seed)
    model = LlavaForConditionalGeneration(LlavaConfig(vision_config=vision, text_config=text, image_token_index=IMAGE,
                                                      image_seq_length=576)).eval()
    model.set_attn_implementation("eager")
    # Two images between text, as a chat prompt lays them out.
    ids = [1] + list(range(10, 40)) + [IMAGE] * 576 + list(range(40, 60)) + [IMAGE] * 576 + list(range(60, 100))
    pixels = torch.randn(2, 3, 336, 336)
    export_dump(model, a.output, torch.tensor([ids]), pixels, probes=8, store_query=True, model_name="tiny-random-llava")
    print(f"wrote {a.output}: {a.layers} layers, {len(ids)} tokens")


if __name__ == "__main__":
    main()
