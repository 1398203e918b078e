import Testing

@testable import LookM

/// Selectors on hand-made inputs small enough to check by hand.
private let T = Modality.text
private let I = Modality.image

@Suite struct SelectorTests {
    static func context(
        _ modality: [Modality], hh: Double, recent: Double, selector: String = "text-prior",
        merge: String = "none", variant: Variant = .paper, group: Int = 1,
        gqa: GQAAggregation? = nil, window: Int? = nil, kernel: Int? = nil, sinks: Int? = nil
    ) throws -> LayerContext {
        let method = try Method.resolve(
            MethodOptions(
                selector: selector, merge: merge, variant: variant,
                budget: BudgetOptions(hhRatio: hh, recentRatio: recent),
                selectorFlags: SelectorFlags(gqaAgg: gqa, window: window, kernel: kernel, sinks: sinks)))
        return LayerContext(method: method, layer: 0, layers: 1, modality: modality, groupSize: group)
    }

    static func select(
        _ c: LayerContext, scores: [Float]? = nil, keys: [Float]? = nil, window: [[Double]]? = nil, D: Int = 1
    ) throws -> [Int] {
        let selector = c.method.selector
        let k = keys ?? [Float](repeating: 1, count: c.length * D)
        return try k.withUnsafeBufferPointer {
            try selector.select(HeadInput(kvHead: 0, headDim: D, keys: $0, scores: scores, windowSums: window), c)
        }
    }

    @Test func textPriorKeepsTextFirstThenImagesByScore() throws {
        // 10 tokens: hh = 4, recent = 2 (positions 8, 9). Old text: 0, 1, 6. One image slot left.
        let m = [T, T, I, I, I, I, T, I, I, T]
        let c = try Self.context(m, hh: 0.4, recent: 0.2)
        let scores: [Float] = [0.1, 0.2, 5, 9, 9, 1, 0.05, 3, 3, 0]
        // Image 3 and 4 tie at 9: the lower position wins (paper variant).
        #expect(try Self.select(c, scores: scores) == [0, 1, 3, 6, 8, 9])
    }

    @Test func textPriorOnAllTextPromptRanksLikeH2O() throws {
        let m = [Modality](repeating: T, count: 10)
        let scores: [Float] = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
        let tp = try Self.select(Self.context(m, hh: 0.3, recent: 0.2), scores: scores)
        let h2o = try Self.select(Self.context(m, hh: 0.3, recent: 0.2, selector: "h2o"), scores: scores)
        #expect(tp == h2o)
        #expect(tp == [4, 5, 7, 8, 9])  // 9, 6, 5(pos 4, lower than pos 8 which is recent anyway)
    }

    @Test func textPriorOnAllImagePromptUsesScores() throws {
        let m = [Modality](repeating: I, count: 10)
        let scores: [Float] = [0, 8, 0, 7, 0, 0, 6, 0, 0, 0]
        #expect(try Self.select(Self.context(m, hh: 0.2, recent: 0.1), scores: scores) == [1, 3, 9])
    }

    @Test func imagesInTheRecentWindowAreKeptRegardless() throws {
        let m = [T, T, T, T, T, T, I, I, I, I]
        let c = try Self.context(m, hh: 0.2, recent: 0.3)
        let kept = try Self.select(c, scores: [Float](repeating: 1, count: 10))
        #expect(kept == [0, 1, 7, 8, 9])
    }

    @Test func referenceTextPriorKeepsAllOldTextBeyondHH() throws {
        let m = [T, T, T, T, I, I, I, T, I, T]
        let c = try Self.context(m, hh: 0.2, recent: 0.2, variant: .reference)
        // hh = 2 but old text is 0, 1, 2, 3, 7: all kept, images never (rule 1).
        #expect(try Self.select(c, scores: [1, 1, 1, 1, 9, 9, 9, 1, 9, 9]) == [0, 1, 2, 3, 7, 8, 9])
    }

    @Test func h2oReferenceForcesSinksOnlyWhenMerging() throws {
        let m = [T, T, T, T, T, T, T, T, T, T, T, T, T, T, T, T, T, T, T, T]
        let scores: [Float] = [0, 0, 0, 0, 5, 6, 7, 8, 9, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
        let merging = try Self.context(m, hh: 0.3, recent: 0.1, selector: "h2o", merge: "pivot", variant: .reference)
        #expect(try Self.select(merging, scores: scores) == [0, 1, 2, 3, 7, 8, 18, 19])
        let plain = try Self.context(m, hh: 0.3, recent: 0.1, selector: "h2o", variant: .reference)
        // No sinks: the five top scores, then one of the tied 1s (libstdc++ decides which), then recent.
        let kept = try Self.select(plain, scores: scores)
        #expect(Array(kept.prefix(5)) == [4, 5, 6, 7, 8] && kept.count == 8 && (9..<18).contains(kept[5]))
    }

    @Test func streamingKeepsSinksAndTheMostRecent() throws {
        let m = [Modality](repeating: T, count: 20)
        #expect(
            try Self.select(Self.context(m, hh: 0.2, recent: 0.1, selector: "streaming", sinks: 2)) == [
                0, 1, 16, 17, 18, 19,
            ])
        // More sinks than the budget: the budget wins.
        #expect(
            try Self.select(Self.context(m, hh: 0.1, recent: 0.1, selector: "streaming", sinks: 9)) == [0, 1, 2, 3])
    }

    @Test func keyNormPrefersSmallAndZeroKeys() throws {
        let m = [Modality](repeating: T, count: 10)
        // D = 2: norms 5, 0 (zero key), 1, 1, 3, ... ; ties to the lower position.
        let keys: [Float] = [3, 4, 0, 0, 1, 0, 0, 1, 3, 0, 2, 2, 9, 9, 9, 9, 9, 9, 9, 9]
        #expect(
            try Self.select(Self.context(m, hh: 0.3, recent: 0.1, selector: "knorm"), keys: keys, D: 2) == [1, 2, 3, 9])
    }

    @Test func snapkvPoolsWithZeroPaddingAndAggregatesQueryHeads() throws {
        #expect(SnapKVSelector.pool([3, 0, 0, 0, 6], 3) == [1, 1, 0, 2, 2])
        let m = [Modality](repeating: T, count: 10)
        let c = try Self.context(m, hh: 0.1, recent: 0.2, selector: "snapkv", group: 2, gqa: .max, window: 2, kernel: 1)
        // Two query heads; max over heads, kernel 1 (no pooling): position 5 (head 1) beats 2 (head 0).
        let w: [[Double]] = [[0, 0, 4, 0, 0, 0, 0, 0, 9, 9], [0, 0, 0, 0, 0, 5, 0, 0, 9, 9]]
        #expect(try Self.select(c, window: w) == [5, 8, 9])
        let sum = try Self.context(
            m, hh: 0.1, recent: 0.2, selector: "snapkv", group: 2, gqa: .sum, window: 2, kernel: 3)
        // Pooled sums: position 4 collects 4/3 + 5/3 from both neighbours.
        #expect(try Self.select(sum, window: w) == [4, 8, 9])
    }

    @Test func gqaAggregationByHand() {
        let heads: [[Float]] = [[1, 4, 2], [3, 0, 2]]
        #expect(Scores.aggregate(heads, .mean) == [2, 2, 2])
        #expect(Scores.aggregate(heads, .sum) == [4, 4, 4])
        #expect(Scores.aggregate(heads, .max) == [3, 4, 2])
        #expect(Scores.aggregate([[Float(1), 2, 3]], .sum) == [1, 2, 3])  // one query head per kv head
    }

    @Test func budgetsFloorAsTheOfficialCode() {
        #expect(Budget.ratios(hh: 0.1, recent: 0.1).split(length: 773) == (77, 77))
        #expect(Budget.keep(25).split(length: 100) == (13, 12))
        #expect(Budget.fraction(0.3).split(length: 132) == (20, 19))
        #expect(Budget.ratios(hh: 0.01, recent: 0.01).split(length: 99) == (0, 0))
    }

    @Test func torchTopKBreaksTiesAsLibstdcxx() {
        // All tied: which indices win depends on the algorithm, not on position order.
        let tied = [Float](repeating: 1, count: 10)
        let partial = TopK.torch(tied + [Float](repeating: 0, count: 630), 10)  // k * 64 <= n: partial_sort
        #expect(Set(partial) == Set(0..<10))
        let nth = TopK.torch(tied, 3)  // nth_element branch
        #expect(nth.count == 3 && Set(nth).count == 3)
        #expect(TopK.stable([1, 3, 3, 2], 2) == [1, 2])
    }
}
