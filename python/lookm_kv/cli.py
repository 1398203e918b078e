"""`lookm-export`: a lookm dump from a local transformers multimodal model.

    lookm-export --model PATH --image a.jpg [--image b.jpg] --prompt "USER: <image>\\n... ASSISTANT:" \\
        -o dump.h5 [--probes 8] [--window 32] [--query] [--dtype float16|bfloat16|float32] [--attn eager|sdpa]

The model and its processor are loaded from PATH (no download); every output of the processor is
passed to the model as it comes (docs/format.md, the README's table of tested families).
"""
import argparse
import sys


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

    from .export import export_dump

    dtype = getattr(torch, a.dtype) if a.dtype else None
    model = AutoModelForImageTextToText.from_pretrained(a.model, dtype=dtype, local_files_only=True).eval()
    model.set_attn_implementation(a.attn)
    processor = AutoProcessor.from_pretrained(a.model, local_files_only=True)
    images = [Image.open(p).convert("RGB") for p in a.image] or None
    inputs = processor(images=images, text=a.prompt, return_tensors="pt")
    if dtype is not None and inputs.get("pixel_values") is not None:
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    tokens = export_dump(model, a.output, **inputs, window=a.window, probes=a.probes, store_query=a.query, model_name=a.model)
    print(f"wrote {a.output}; greedy continuation: {processor.decode(tokens) if tokens else ''}", file=sys.stderr)
