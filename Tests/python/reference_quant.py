"""An independent NumPy implementation of docs/method.md section 12 (quantised storage): from the
keys and values an unquantised cache holds, the codes, scales, zero points and residual slots a
quantised cache must store, bit for bit. Written from the document, not from lookm's code: fp8
codes come from a table of every E4M3 value rather than from bit arithmetic."""
import numpy as np


def to_type(x, dtype):
    """Round float32 values to the element type (nearest, ties to even), as float32."""
    x = np.asarray(x, np.float32)
    if dtype == "float16":
        return x.astype(np.float16).astype(np.float32)
    if dtype == "bfloat16":
        bits = x.view(np.uint32).astype(np.uint64)
        lower = bits & 0xFFFF
        upper = bits >> 16
        up = (lower > 0x8000) | ((lower == 0x8000) & (upper & 1 == 1))
        return ((upper + up) << 16).astype(np.uint32).view(np.float32)
    return x


# Every non-negative finite E4M3 value, by code 0..126 (127 is NaN).
E4M3 = np.array(
    [m / 8 * 2.0 ** -6 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7) for e in range(16) for m in range(8)][:127],
    dtype=np.float64)


def e4m3_code(q):
    """Nearest E4M3 code (ties to the even code), saturating at 448; sign from the sign bit."""
    q = np.asarray(q, np.float32)
    a = np.minimum(np.abs(q).astype(np.float64), 448.0)
    d = np.abs(a[..., None] - E4M3)
    best = d.min(axis=-1, keepdims=True)
    candidates = np.where(d == best, np.arange(127), 1 << 20)
    # ties: two candidates; take the even one
    lo = candidates.min(axis=-1)
    hi = np.where(d == best, np.arange(127), -1).max(axis=-1)
    code = np.where((lo != hi) & (lo % 2 == 1), hi, lo).astype(np.uint8)
    return code | np.where(np.signbit(q), 0x80, 0).astype(np.uint8)


def layout(kept, head_dim, group, residual):
    """(key slots, value slots) quantised, by KIVI's residual rule."""
    if residual == 0:
        return kept, kept
    return kept - kept % residual, max(0, kept - residual)


def _int_group(x, bits, dtype):
    mn, mx = x.min(), x.max()
    scale = to_type(to_type(mx - mn, dtype) / np.float32(2 ** bits - 1), dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = to_type(to_type(x - mn, dtype) / scale, dtype)
    code = np.where(np.isnan(q), 0, np.rint(np.clip(q, 0, 2 ** bits - 1))).astype(np.uint8)
    return code, np.float32(scale), np.float32(mn)


def _fp8_group(x, dtype):
    scale = to_type(np.abs(x).max() / np.float32(448), dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = to_type(x / scale, dtype)
    code = np.where(np.isnan(q), 0, e4m3_code(np.nan_to_num(q, nan=0.0)))
    return code.astype(np.uint8), np.float32(scale), None


def pack(codes, bits):
    """Codes in stream order, the first in the lowest bits of byte 0."""
    codes = np.asarray(codes, np.uint8).ravel()
    out = np.zeros((codes.size * bits + 7) // 8, np.uint8)
    for n, c in enumerate(codes):
        bit = n * bits
        out[bit // 8] |= np.uint8((int(c) << (bit % 8)) & 0xFF)
    return out


def quantise_head(keys, values, scheme, group, residual, dtype):
    """keys, values: [kept, head_dim] float32 of the element type. Returns a dict of the stored
    arrays of one head (codes packed; scales and zero points as float32 values of the type)."""
    kept, D = keys.shape
    bits = 8 if scheme == "fp8" else int(scheme[3:])
    Qk, Qv = layout(kept, D, group, residual)

    def encode(x):
        return _fp8_group(x, dtype) if scheme == "fp8" else _int_group(x, bits, dtype)

    out = {"key_residual": keys[Qk:], "value_residual": values[Qv:]}
    k_codes, k_scale, k_zero = [], [], []
    for c in range(D):
        row_s, row_z = [], []
        for start in range(0, Qk, group):
            code, s, z = encode(keys[start:start + group, c])
            k_codes.extend(code)
            row_s.append(s)
            row_z.append(z)
        k_scale.append(row_s)
        k_zero.append(row_z)
    v_codes, v_scale, v_zero = [], [], []
    for j in range(Qv):
        row_s, row_z = [], []
        for start in range(0, D, group):
            code, s, z = encode(values[j, start:start + group])
            v_codes.extend(code)
            row_s.append(s)
            row_z.append(z)
        v_scale.append(row_s)
        v_zero.append(row_z)
    Gk = -(-Qk // group)
    Gv = -(-D // group) if Qv else 0
    out["key_codes"] = pack(k_codes, bits)
    out["value_codes"] = pack(v_codes, bits)
    out["key_scale"] = np.array(k_scale, np.float32).reshape(D, Gk)
    out["value_scale"] = np.array(v_scale, np.float32).reshape(Qv, Gv)
    if scheme != "fp8":
        out["key_zero"] = np.array(k_zero, np.float32).reshape(D, Gk)
        out["value_zero"] = np.array(v_zero, np.float32).reshape(Qv, Gv)
    # What a model reads back.
    k_hat = keys.copy()
    v_hat = values.copy()
    kc = np.array(k_codes, np.uint8).reshape(D, Qk) if Qk else np.zeros((D, 0), np.uint8)
    vc = np.array(v_codes, np.uint8).reshape(Qv, D) if Qv else np.zeros((0, D), np.uint8)
    for c in range(D):
        for j in range(Qk):
            s = out["key_scale"][c, j // group]
            z = out["key_zero"][c, j // group] if scheme != "fp8" else None
            k_hat[j, c] = _decode(kc[c, j], s, z, scheme, dtype)
    for j in range(Qv):
        for c in range(D):
            s = out["value_scale"][j, c // group]
            z = out["value_zero"][j, c // group] if scheme != "fp8" else None
            v_hat[j, c] = _decode(vc[j, c], s, z, scheme, dtype)
    out["keys"], out["values"] = k_hat, v_hat
    return out


def _decode(code, scale, zero, scheme, dtype):
    if scheme == "fp8":
        mag = E4M3[int(code) & 0x7F]
        v = -mag if code & 0x80 else mag
        return to_type(np.float32(v) * scale, dtype)
    return to_type(to_type(np.float32(code) * scale, dtype) + zero, dtype)
