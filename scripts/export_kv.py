#!/usr/bin/env python3
"""Export a lookm dump from a local transformers multimodal model (LLaVA-1.5 / LLaVA-NeXT style).

    scripts/export_kv.py --model PATH --image a.jpg [--image b.jpg] --prompt "USER: <image>\\n... ASSISTANT:" \\
        -o dump.h5 [--probes 8] [--window 32] [--query] [--dtype float16|bfloat16|float32]

The model and its processor are loaded from PATH (no download). See python/lookm_kv/export.py.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--image", action="append", default=[])
    ap.add_argument("--prompt", required=True)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--probes", type=int, default=8)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--query", action="store_true", help="also store the prefill queries")
    ap.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default=None)
    ap.add_argument("--attn", default="eager", help="attention implementation (eager gives weights; sdpa uses queries)")
    a = ap.parse_args()

    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from lookm_kv import export_dump

    dtype = getattr(torch, a.dtype) if a.dtype else None
    model = AutoModelForImageTextToText.from_pretrained(a.model, torch_dtype=dtype, local_files_only=True).eval()
    model.set_attn_implementation(a.attn)
    processor = AutoProcessor.from_pretrained(a.model, local_files_only=True)
    images = [Image.open(p).convert("RGB") for p in a.image] or None
    inputs = processor(images=images, text=a.prompt, return_tensors="pt")
    extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "pixel_values", "attention_mask")}
    pixels = inputs.get("pixel_values")
    if pixels is not None and dtype is not None:
        pixels = pixels.to(dtype)
    tokens = export_dump(model, a.output, inputs["input_ids"], pixels, window=a.window, probes=a.probes,
                         store_query=a.query, model_name=a.model, **extra)
    print(f"wrote {a.output}; greedy continuation: {processor.decode(tokens) if tokens else ''}", file=sys.stderr)


if __name__ == "__main__":
    main()
