import CKernels
import Testing

/// The 16-bit conversions decide every stored value; the F16C path must equal the portable one.
@Suite struct ConversionTests {
    @Test func halfToFloatMatchesScalarForEveryBitPattern() {
        let all = (0...0xFFFF).map { UInt16($0) }
        var fast = [Float](repeating: 0, count: all.count)
        var slow = fast
        lookm_f16_to_f32(all, &fast, all.count)
        lookm_f16_to_f32_scalar(all, &slow, all.count)
        for i in all.indices {
            #expect(fast[i].bitPattern == slow[i].bitPattern, "half 0x\(String(i, radix: 16))")
            // And both agree with Swift's own Float16 (exact widening).
            let reference = Float(Float16(bitPattern: all[i]))
            if !reference.isNaN { #expect(slow[i] == reference) } else { #expect(slow[i].isNaN) }
        }
    }

    @Test func floatToHalfRoundsToNearestEven() {
        var inputs: [Float] = [
            0, -0, 1, -1, 65504, 65519.996, 65520, -65520, 1e-8, 2.9802322e-8, 2.9802326e-8,
            5.9604645e-8, 6.1035156e-5, 6.097555e-5, .infinity, -.infinity, .greatestFiniteMagnitude,
            1.00048828125, 1.00146484375, 0.333333333,
        ]
        var state: UInt64 = 42
        for _ in 0..<200_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let bits = UInt32(truncatingIfNeeded: state >> 32)
            // Bias towards the half range so subnormals, normals and overflow all appear.
            let exp = UInt32(96 + (bits >> 24) % 50) << 23
            inputs.append(Float(bitPattern: (bits & 0x807F_FFFF) | exp))
        }
        var fast = [UInt16](repeating: 0, count: inputs.count)
        var slow = fast
        lookm_f32_to_f16(inputs, &fast, inputs.count)
        lookm_f32_to_f16_scalar(inputs, &slow, inputs.count)
        for i in inputs.indices {
            #expect(fast[i] == slow[i], "\(inputs[i])")
            #expect(slow[i] == Float16(inputs[i]).bitPattern, "\(inputs[i]) vs Swift's Float16")
        }
    }

    @Test func bfloat16RoundTripsAndRoundsToNearestEven() {
        let all = (0...0xFFFF).map { UInt16($0) }
        var f = [Float](repeating: 0, count: all.count)
        var back = [UInt16](repeating: 0, count: all.count)
        lookm_bf16_to_f32(all, &f, all.count)
        lookm_f32_to_bf16(f, &back, all.count)
        for i in all.indices where !f[i].isNaN { #expect(back[i] == all[i]) }
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
        let ties: [Float] = [1 + 0x1p-8, 1 + 3 * 0x1p-8, .nan]
        var out = [UInt16](repeating: 0, count: 3)
        lookm_f32_to_bf16(ties, &out, 3)
        #expect(out[0] == 0x3F80)
        #expect(out[1] == 0x3F82)
        #expect(out[2] & 0x7FC0 == 0x7FC0)  // NaN stays a quiet NaN
    }

    @Test func nonFiniteScanFindsTheFirstBadValue() {
        var x = [Float](repeating: 1, count: 1000)
        #expect(lookm_first_nonfinite_f32(x, x.count) == x.count)
        x[700] = .infinity
        x[900] = .nan
        #expect(lookm_first_nonfinite_f32(x, x.count) == 700)
        x[3] = -.nan
        #expect(lookm_first_nonfinite_f32(x, x.count) == 3)
    }
}
