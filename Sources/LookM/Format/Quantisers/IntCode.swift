/// KIVI's asymmetric integer codes (Liu et al., ICML 2024; jy-yuan/KIVI `quant/new_pack.py`,
/// `quant_and_pack_vcache`): per group, the minimum is the zero point, `scale = (max - min) /
/// (2^bits - 1)`, and a value's code is `round(clamp((x - min) / scale, 0, 2^bits - 1))`, rounding
/// half to even as torch's `round_` does.
struct IntCode: QuantCode {
    let bits: Int
    var name: String { "int\(bits)" }
    var hasZero: Bool { true }
    private var maxCode: Float { Float((1 << bits) - 1) }

    func encode(_ group: UnsafeBufferPointer<Float>, type: ElementType, codes: UnsafeMutableBufferPointer<UInt8>)
        -> (scale: Float, zero: Float)
    {
        var mn = Float.infinity
        var mx = -Float.infinity
        for x in group {
            mn = min(mn, x)
            mx = max(mx, x)
        }
        let scale = type.rounded(type.rounded(mx - mn) / maxCode)
        for (j, x) in group.enumerated() { codes[j] = code(x, scale: scale, zero: mn, type: type) }
        return (scale, mn)
    }

    func code(_ x: Float, scale: Float, zero: Float, type: ElementType) -> UInt8 {
        let q = type.rounded(type.rounded(x - zero) / scale)
        // 0 / 0 (a constant group: scale 0) is NaN, which KIVI's cast leaves undefined: code 0,
        // which decodes to the minimum, the group's one value. x / 0 > 0 (a scale that
        // underflowed) is infinity: the largest code.
        return q.isNaN ? 0 : UInt8(min(max(q, 0), maxCode).rounded(.toNearestOrEven))
    }

    func decode(_ code: UInt8, scale: Float, zero: Float, type: ElementType) -> Float {
        // KIVI's unpack_and_dequant: `code.to(dtype) * scale + mn`, two roundings to the dtype.
        type.rounded(type.rounded(Float(code) * scale) + zero)
    }
}
