import CKernels
import Testing

@testable import LookM

/// `lookm_pivots` on every path the CPU has (AVX-512, AVX2+FMA, scalar) against the definition in
/// `Sources/CKernels/similarity.c`: one fused multiply-add chain per cosine over the channels in
/// order, the first maximum. Keys drawn from a few small integers make exact ties common; all-negative
/// cosines and zero rows check that a panel's padding columns never win.
@Suite struct SimilarityKernelTests {
    static func expected(panelRows: [Float], rows: [Float], kept: Int, d: Int) -> [(Int32, Float)] {
        stride(from: 0, to: rows.count, by: d).map { start in
            var best: (Int32, Float) = (0, -.infinity)
            for j in 0..<kept {
                var c: Float = 0
                for k in 0..<d { c = c.addingProduct(rows[start + k], panelRows[j * d + k]) }
                if c > best.1 { best = (Int32(j), c) }
            }
            return (best.0, best.1 + 0)
        }
    }

    static func normalised(_ x: [Float], d: Int) -> [Float] {
        let n = x.count / d
        var out = [Float](repeating: 0, count: x.count)
        let rows = (0..<n).map(Int64.init)
        lookm_normalise_rows(x, rows, n, d, &out)
        return out
    }

    @Test(arguments: [0, 1, 2])
    func everyPathIsTheOrderedFMAChain(level: Int32) {
        var random = SeededRandom(seed: 7)
        for (kept, d, n) in [(1, 1, 3), (5, 3, 13), (31, 8, 25), (32, 128, 7), (33, 130, 12), (97, 16, 29), (64, 5, 1)]
        {
            for negate in [false, true] {
                var keys = (0..<(kept * d)).map { _ in Float(Int(random.next() % 5) - 2) }
                var rows = (0..<(n * d)).map { _ in Float(Int(random.next() % 5) - 2) }
                if negate {  // every cosine <= 0 (rows opposite to one all-positive key set)
                    keys = keys.map { abs($0) + 1 }
                    rows = rows.map { -abs($0) - 1 }
                }
                for z in stride(from: 0, to: n, by: 4) { for k in 0..<d { rows[z * d + k] = 0 } }
                let panelRows = Self.normalised(keys, d: d)
                let a = Self.normalised(rows, d: d)
                var panel = [Float](repeating: .nan, count: lookm_pivot_panel_floats(kept, d))
                lookm_pack_pivot_panel(keys, (0..<kept).map(Int64.init), kept, d, &panel)
                var index = [Int32](repeating: -1, count: n)
                var value = [Float](repeating: .nan, count: n)
                lookm_pivots_at(level, panel, kept, d, a, n, &index, &value)
                let want = Self.expected(panelRows: panelRows, rows: a, kept: kept, d: d)
                #expect(index == want.map(\.0), "level \(level) kept \(kept) d \(d)")
                #expect(value.map(\.bitPattern) == want.map(\.1.bitPattern), "level \(level) kept \(kept) d \(d)")
            }
        }
    }

    /// Screening gives the exact path's bits (or declines, without AVX512_BF16): on tie-heavy keys,
    /// on near-duplicates whose cosines differ below bfloat16's resolution, and odd head_dims.
    @Test func screeningIsBitIdenticalToTheExactPath() {
        var random = SeededRandom(seed: 11)
        for (kept, d, n) in [(1, 1, 3), (40, 33, 30), (818, 128, 40), (97, 130, 25), (64, 2, 13)] {
            for style in 0..<3 {
                let base = (0..<d).map { _ in random.normal() }
                func key() -> [Float] {
                    switch style {
                    case 0: return (0..<d).map { _ in Float(Int(random.next() % 3) - 1) }
                    case 1: return base.map { $0 + 1e-4 * random.normal() }  // cosines within 1e-6 of each other
                    default: return (0..<d).map { _ in random.normal() }
                    }
                }
                let keys = (0..<kept).flatMap { _ in key() }
                let rows = Self.normalised((0..<n).flatMap { _ in key() }, d: d)
                var panel = [Float](repeating: 0, count: lookm_pivot_panel_floats(kept, d))
                lookm_pack_pivot_panel(keys, (0..<kept).map(Int64.init), kept, d, &panel)
                var exact = ([Int32](repeating: -1, count: n), [Float](repeating: .nan, count: n))
                lookm_pivots_at(2, panel, kept, d, rows, n, &exact.0, &exact.1)
                var words = [UInt32](repeating: 0, count: lookm_screen_panel_words(kept, d))
                var scratch = [Float](repeating: 0, count: lookm_screen_scratch_floats(kept, d))
                var bounds = [Double](repeating: 0, count: 3)
                lookm_pack_screen_panel(panel, kept, d, &words, &bounds)
                var got = ([Int32](repeating: -1, count: n), [Float](repeating: .nan, count: n))
                let before = lookm_screen_rechecked()
                let ran = lookm_pivots_screened(panel, words, bounds, kept, d, rows, n, &got.0, &got.1, &scratch)
                #expect((ran != 0) == (lookm_pivot_kernel_level_available() == 3))
                guard ran != 0 else { continue }
                #expect(got.0 == exact.0, "kept \(kept) d \(d) style \(style)")
                #expect(got.1.map(\.bitPattern) == exact.1.map(\.bitPattern), "kept \(kept) d \(d) style \(style)")
                #expect(lookm_screen_rechecked() - before >= UInt64(n))  // at least the winner per row
            }
        }
    }

    /// A head_dim where the bound's D 2^-24 term stops being small (only a hostile file has one) is
    /// left to the exact path.
    @Test func screeningDeclinesHugeHeadDims() {
        let d = 1 << 20
        let keys = [Float](repeating: 1, count: d)
        var panel = [Float](repeating: 0, count: lookm_pivot_panel_floats(1, d))
        lookm_pack_pivot_panel(keys, [0], 1, d, &panel)
        var words = [UInt32](repeating: 0, count: lookm_screen_panel_words(1, d))
        var scratch = [Float](repeating: 0, count: lookm_screen_scratch_floats(1, d))
        var bounds = [Double](repeating: 0, count: 3)
        lookm_pack_screen_panel(panel, 1, d, &words, &bounds)
        var index: [Int32] = [-1]
        var value: [Float] = [.nan]
        #expect(lookm_pivots_screened(panel, words, bounds, 1, d, keys, 1, &index, &value, &scratch) == 0)
        #expect(index == [-1])
    }
}
