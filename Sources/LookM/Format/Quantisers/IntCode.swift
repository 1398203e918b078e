import CKernels

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
        var scale: Float = 0
        var zero: Float = 0
        lookm_int_group(group.baseAddress, group.count, maxCode, type.roundingKind, codes.baseAddress, &scale, &zero)
        return (scale, zero)
    }

    func code(_ x: Float, scale: Float, zero: Float, type: ElementType) -> UInt8 {
        var x = x
        var c: UInt8 = 0
        lookm_int_codes(&x, 1, zero, scale, maxCode, type.roundingKind, &c)
        return c
    }

    func decode(_ code: UInt8, scale: Float, zero: Float, type: ElementType) -> Float {
        // KIVI's unpack_and_dequant: `code.to(dtype) * scale + mn`, two roundings to the dtype.
        type.rounded(type.rounded(Float(code) * scale) + zero)
    }
}
