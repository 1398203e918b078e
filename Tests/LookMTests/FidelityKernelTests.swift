import CKernels
import Foundation
import Testing

@testable import LookM

/// The fidelity attention's own exp (`Sources/CKernels/fidelity.c`), which every code path shares:
/// within 1 ulp of the C library's on normal results, exact where it must be, and its softmax
/// weights summing to 1.
@Suite struct FidelityKernelTests {
    @Test func expIsWithinOneUlpOfTheLibrary() {
        var rng = SystemRandomNumberGenerator()
        var worst = 0.0
        for i in 0..<200_000 {
            // Dense near 0 (where softmax weights live), and across the whole range down to the subnormals.
            let x = i % 2 == 0 ? -Double.random(in: 0...40, using: &rng) : -Double.random(in: 0...708, using: &rng)
            let want = Foundation.exp(x)
            let got = lookm_exp_nonpositive(x)
            worst = max(worst, abs(got - want) / want.ulp)
        }
        #expect(worst <= 1, "worst \(worst) ulp")
        #expect(lookm_exp_nonpositive(0) == 1 && lookm_exp_nonpositive(-0.0) == 1)
        #expect(lookm_exp_nonpositive(-746) == 0 && lookm_exp_nonpositive(-1e300) == 0)
        #expect(lookm_exp_nonpositive(-.infinity) == 0)
        // Subnormal results round once: within one subnormal step of the library's.
        for x in stride(from: -745.0, through: -709.0, by: 0.37) {
            #expect(abs(lookm_exp_nonpositive(x) - Foundation.exp(x)) <= Double.leastNonzeroMagnitude)
        }
    }

    @Test func attentionWeightsSumToOneAndHiddenRowsWeighNothing() {
        let (n, R, D) = (11, 37, 5)  // a full block of 8 queries and a partial one of 3
        var rng = SystemRandomNumberGenerator()
        let q = (0..<(n * D)).map { _ in Double(Float.random(in: -2...2, using: &rng)) }
        let k = (0..<(R * D)).map { _ in Float.random(in: -2...2, using: &rng) }
        let v = (0..<(R * D)).map { _ in Float.random(in: -2...2, using: &rng) }
        let pos = (0..<Int64(R)).map { $0 }
        let limit = (0..<Int64(n)).map { $0 * 3 }  // query i sees rows 0 ... 3i
        let lanes = Int(LOOKM_ATTENTION_LANES)
        var w = [Double](repeating: .nan, count: (n + lanes - 1) / lanes * R * lanes)
        var out = [Double](repeating: .nan, count: n * D)
        k.withUnsafeBufferPointer { kb in
            v.withUnsafeBufferPointer { vb in
                lookm_attention_f64(q, n, lookm_rows(kb), lookm_rows(vb), R, D, 0.5, pos, limit, &w, &out)
            }
        }
        for i in 0..<n {
            let weights = (0..<R).map { w[((i / lanes) * R + $0) * lanes + i % lanes] }
            #expect(abs(weights.reduce(0, +) - 1) < 1e-14)
            #expect(weights.enumerated().allSatisfy { $0.offset <= 3 * i || $0.element == 0 })
            // Query 0 sees only row 0: its output is that row's value.
            if i == 0 { #expect((0..<D).allSatisfy { out[$0] == Double(v[$0]) }) }
        }
    }
}
