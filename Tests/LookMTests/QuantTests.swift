import Testing

@testable import LookM

/// The arithmetic under quantised storage (docs/method.md section 12); the codes themselves are
/// checked against the independent NumPy reference in Tests/python/test_quant.py.
@Suite struct QuantTests {
    /// The bit-arithmetic rounding equals the float16 and bfloat16 conversions on a spread of every
    /// binade, both signs, the subnormals, the overflow boundary and the ties.
    @Test func elementRoundingEqualsTheConversions() {
        var values: [Float] = [65504, 65519.99, 65520, 65535, 0x1p-14, 0x1p-24, 0x1p-25, 0x1.8p-25, 0x1p-26, 0, -0.0]
        var bits: UInt32 = 0
        while bits < 0x7F80_0000 {
            values.append(Float(bitPattern: bits))
            bits &+= 4099
        }
        values += values.map { -$0 }
        var roundedBF16 = values
        ElementConversion.round(&roundedBF16, to: .bfloat16)
        for (x, bf) in zip(values, roundedBF16) {
            let f16 = Float(Float16(x))
            #expect(ElementType.float16.rounded(x).bitPattern == f16.bitPattern, "float16 \(x)")
            #expect(ElementType.bfloat16.rounded(x).bitPattern == bf.bitPattern, "bfloat16 \(x)")
            #expect(ElementType.float32.rounded(x) == x)
        }
    }

    /// Every E4M3 value encodes to its own code; midpoints go to the even code; beyond 448 saturates.
    @Test func fp8CodesRoundTrip() {
        for c in UInt8(0)..<0x7F {
            for sign: UInt8 in [0, 0x80] {
                #expect(FP8Code.encode(FP8Code.value(c | sign)) == c | sign)
            }
            if c < 0x7E {
                let mid = (FP8Code.value(c) + FP8Code.value(c + 1)) / 2
                #expect(FP8Code.encode(mid) == (c % 2 == 0 ? c : c + 1), "midpoint after code \(c)")
            }
        }
        #expect(FP8Code.encode(1e9) == 0x7E && FP8Code.encode(-500) == 0xFE && FP8Code.encode(.infinity) == 0x7E)
    }

    /// KIVI's residual rule and the byte count of one head.
    @Test func shapesFollowKIVI() throws {
        let q = try #require(try QuantScheme.resolve("int2", group: 32, residual: 64))
        let s = q.shape(kept: 150, headDim: 36)
        #expect(s.keySlots == 128 && s.valueSlots == 86 && s.keyGroups == 4 && s.valueGroups == 2)
        #expect(s.keyCodeBytes == 128 * 36 * 2 / 8 && s.valueCodeBytes == (86 * 36 * 2 + 7) / 8)
        #expect(
            s.bytes(elementSize: 2) == s.keyCodeBytes + s.valueCodeBytes + 2 * 2 * (36 * 4 + 86 * 2) + 2 * 36
                * (22 + 64))
        #expect(q.shape(kept: 40, headDim: 36).keySlots == 0)
    }

    /// Decoding what was coded gives values within half a step of the inputs (the codes can fail).
    @Test func intCodesReconstructWithinHalfAStep() throws {
        let q = try #require(try QuantScheme.resolve("int4", group: 8, residual: 0))
        let n = 20
        let D = 12
        let keys = (0..<(n * D)).map { Float(($0 * 7919) % 101) / 10 - 5 }
        let values = keys.reversed().map { $0 * 3 }
        let stored = try keys.withUnsafeBufferPointer { k in
            try values.withUnsafeBufferPointer { v in
                try q.quantise(keys: k, values: v, kept: n, headDim: D, type: .float32)
            }
        }
        let (k2, v2) = q.dequantise(stored, kept: n, headDim: D, type: .float32)
        for c in 0..<D {
            for j in 0..<n {
                let scale = stored.keyScale[c * 3 + j / 8]
                #expect(abs(k2[j * D + c] - keys[j * D + c]) <= scale / 2 * 1.0001)
            }
        }
        // Values: groups of 8 channels, each spanning at most the whole range 30.3: a step of 30.3 / 15.
        let bound: Float = 30.3 / 15 / 2 * 1.01
        for (a, b) in zip(v2, values) { #expect(abs(a - b) <= bound) }
    }
}
