/// FP8 E4M3 codes (the "fn" variant of the OCP FP8 formats: bias 7, no infinities, largest finite
/// 448; vLLM's fp8 KV cache): per group a symmetric scale `max |x| / 448`, each value `x / scale`
/// rounded to the nearest E4M3 value (ties to an even code), saturating at +-448.
struct FP8Code: QuantCode {
    var name: String { "fp8" }
    var bits: Int { 8 }
    var hasZero: Bool { false }
    static let largest: Float = 448

    func encode(_ group: UnsafeBufferPointer<Float>, type: ElementType, codes: UnsafeMutableBufferPointer<UInt8>)
        -> (scale: Float, zero: Float)
    {
        var amax: Float = 0
        for x in group { amax = max(amax, abs(x)) }
        let scale = type.rounded(amax / Self.largest)
        for (j, x) in group.enumerated() { codes[j] = code(x, scale: scale, zero: 0, type: type) }
        return (scale, 0)
    }

    func code(_ x: Float, scale: Float, zero: Float, type: ElementType) -> UInt8 {
        let q = type.rounded(x / scale)
        // 0 / 0 (an all-zero group) is NaN: code 0, which decodes to 0.
        return q.isNaN ? 0 : Self.encode(q)
    }

    func decode(_ code: UInt8, scale: Float, zero: Float, type: ElementType) -> Float {
        type.rounded(Self.value(code) * scale)
    }

    /// The E4M3 code nearest `q` (ties to the even code), saturating: sign bit, 4 exponent bits
    /// (bias 7), 3 mantissa bits. Codes are ordered like magnitudes, so rounding the magnitude to
    /// a multiple of its binade's quantum and counting quanta gives the code directly.
    static func encode(_ q: Float) -> UInt8 {
        let sign: UInt8 = q.sign == .minus ? 0x80 : 0
        let a = abs(q)
        guard a < largest else { return sign | 0x7E }
        let magnitude: Int
        if a < 0x1p-6 {
            // Subnormals: multiples of 2^-9; 8 of them is 2^-6, which is also code 8.
            magnitude = Int((a * 0x1p9).rounded(.toNearestOrEven))
        } else {
            // Binade [2^e, 2^(e+1)) holds 8 values 2^(e-3) apart; a carry to 16 is the next binade's first.
            let e = Int(a.exponent)
            let steps = Int((a / Float(sign: .plus, exponent: e - 3, significand: 1)).rounded(.toNearestOrEven))
            magnitude = (e + 7) * 8 + steps - 8
        }
        return sign | UInt8(min(magnitude, 0x7E))
    }

    /// The value of an E4M3 code; 0x7F and 0xFF are E4M3's NaN (never written: a file holding
    /// one decodes to NaN, which readers refuse).
    static func value(_ code: UInt8) -> Float {
        if code & 0x7F == 0x7F { return .nan }
        let e = Int((code >> 3) & 0xF)
        let m = Float(code & 7)
        let a = e == 0 ? m * 0x1p-9 : Float(sign: .plus, exponent: e - 10, significand: 8 + m)
        return code & 0x80 != 0 ? -a : a
    }
}
