"""Dequantising a quantised lookm cache (docs/format.md `quantised-kv`, docs/method.md section 12):
h5py and NumPy only, the recipe the format documents."""
import numpy as np


def round_to(x, dtype):
    """float32 values rounded to the cache's element type (ties to even), kept as float32."""
    x = np.asarray(x, dtype=np.float32)
    if dtype == "float16":
        return x.astype(np.float16).astype(np.float32)
    if dtype == "bfloat16":
        b = x.view(np.uint32).astype(np.uint64)
        b = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000
        return b.astype(np.uint32).view(np.float32)
    return x


def element_type(ds):
    """The element type of a float dataset of a lookm file (bfloat16 is stored as uint16)."""
    if ds.attrs.get("dtype") == "bfloat16":
        return "bfloat16"
    return {2: "float16", 4: "float32", 8: "float64"}[ds.dtype.itemsize]


def read_floats(ds):
    """A float dataset as float32 (bfloat16 widened exactly)."""
    x = ds[...]
    if ds.attrs.get("dtype") == "bfloat16":
        return (x.astype(np.uint32) << 16).view(np.float32)
    return x.astype(np.float32)


def unpack(codes, bits, count):
    """`count` codes of `bits` bits from bytes, the first in the lowest bits of byte 0."""
    b = np.unpackbits(codes, bitorder="little")[: count * bits].reshape(count, bits).astype(np.uint8)
    return (b << np.arange(bits, dtype=np.uint8)).sum(axis=1).astype(np.uint8)


def fp8_value(code):
    """E4M3 (bias 7, no infinities) code -> float32."""
    code = np.asarray(code, dtype=np.uint8)
    e = (code >> 3) & 0xF
    m = (code & 7).astype(np.float32)
    a = np.where(e == 0, m * 2.0 ** -9, (8 + m) * np.exp2(e.astype(np.float32) - 10)).astype(np.float32)
    a = np.where((code & 0x7F) == 0x7F, np.float32(np.nan), a)  # E4M3's NaN, never written
    return np.where(code & 0x80, -a, a).astype(np.float32)


def shape(kept, head_dim, scheme, group, residual):
    """Quantised key and value slots, and groups per key channel and per value slot."""
    r = residual
    key_slots = kept if r == 0 else kept - kept % r
    value_slots = kept if r == 0 else max(0, kept - r)
    key_groups = -(-key_slots // group)
    value_groups = -(-head_dim // group) if value_slots else 0
    return key_slots, value_slots, key_groups, value_groups


def dequantise(g, attrs):
    """Keys and values ([heads, kept, head_dim] float32, values of the element type) of a layer
    group `g` (`f["layers/i"]`, or `f["layers/i/heads/h"]` under ragged-heads) of a cache whose
    root attributes are `attrs`."""
    scheme, group, residual = str(attrs["quant"]), int(attrs["quant_group"]), int(attrs["quant_residual"])
    bits = 8 if scheme == "fp8" else int(scheme[3:])
    heads, kept = g["position"].shape
    D = int(attrs["head_dim"])
    dtype = element_type(g["key_scale"])
    Qk, Qv, Gk, Gv = shape(kept, D, scheme, group, residual)

    def decode(codes, scale, zero):
        if scheme == "fp8":
            return round_to(fp8_value(codes) * scale, dtype)
        return round_to(round_to(codes.astype(np.float32) * scale, dtype) + zero, dtype)

    keys = np.zeros((heads, kept, D), np.float32)
    values = np.zeros((heads, kept, D), np.float32)
    for h in range(heads):
        # Keys: the code stream runs channel by channel along the slots; groups of `group` slots.
        code = unpack(g["key_codes"][h], bits, Qk * D).reshape(D, Qk)
        slot_group = np.arange(Qk) // group
        scale = read_floats(g["key_scale"])[h][:, slot_group]
        zero = read_floats(g["key_zero"])[h][:, slot_group] if scheme != "fp8" else 0
        keys[h, :Qk] = decode(code, scale, zero).T
        keys[h, Qk:] = read_floats(g["key_residual"])[h]
        # Values: slot by slot along the channels; groups of `group` channels.
        if Qv:
            code = unpack(g["value_codes"][h], bits, Qv * D).reshape(Qv, D)
            channel_group = np.arange(D) // group
            scale = read_floats(g["value_scale"])[h][:, channel_group]
            zero = read_floats(g["value_zero"])[h][:, channel_group] if scheme != "fp8" else 0
            values[h, :Qv] = decode(code, scale, zero)
        values[h, Qv:] = read_floats(g["value_residual"])[h]
    return keys, values
