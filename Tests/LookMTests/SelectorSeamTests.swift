import Testing

@testable import LookM

/// A selector defined here, in the test target, not in Sources: every other old position up to
/// the heavy-hitter budget, plus the recent window. It proves the seam docs/adding-a-method.md
/// describes is open: one type conforming to `Selector` and one registration, and `compress`,
/// flag resolution, the canonical `method` JSON and the cache all take it.
private struct EveryOtherSelector: PlainSelector {
    static let name = "every-other-test"

    func select(_ head: HeadInput, _ context: LayerContext) throws -> [Int] {
        Array(stride(from: 0, to: context.oldCount, by: 2).prefix(context.hh)) + Array(recentPositions(context))
    }
}

@Suite struct SelectorSeamTests {
    @Test func aSelectorFromOutsideSourcesRunsThroughCompress() throws {
        SelectorRegistry.register(EveryOtherSelector.self)
        let dir = TemporaryDirectory()
        let dump = try TestDumps.write(TestDumps.small(), to: dir.file("dump.h5"))
        let method = try Method.resolve(
            MethodOptions(selector: "every-other-test", merge: "pivot", budget: BudgetOptions(budget: 0.5)))
        let summary = try Compressor.run(
            input: try InputFile(dump), destination: .file(dir.file("cache.h5")), force: false, method: method,
            codec: .zstd(level: 3),
            threads: 2)
        let cache = try CacheReader(path: dir.file("cache.h5"))
        let L = cache.shape.seqLen
        let (hh, recent) = method.budget.split(length: L)
        let expected = Array(stride(from: 0, to: L - recent, by: 2).prefix(hh)) + Array((L - recent)..<L)
        for i in 0..<cache.shape.numLayers {
            let slots = try cache.layer(i).slots(head: 0)
            #expect(slots.position.map(Int.init) == expected)
            #expect(slots.merged.reduce(0, +) == Int32(L - expected.count))  // pivot merge folds in the rest
        }
        #expect(cache.method.contains(#""selector":"every-other-test""#))
        #expect(summary.layers.allSatisfy { $0.kept == expected.count })
    }
}
