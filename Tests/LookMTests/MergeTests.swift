import Testing

@testable import LookM

/// Merges on 2-dimensional keys whose cosines can be read off a drawing.
@Suite struct MergeTests {
    // Positions 0..4, D = 2. Kept: 0 (east), 3 (north). Evicted: 1 (north-east-ish east), 2 (north),
    // 4 (zero key: cosine 0 with everything, so slot 0, the first).
    static let keys: [Float] = [1, 0, 2, 1, 0, 3, 0, 1, 0, 0]
    static let values: [Float] = [10, 0, 20, 0, 30, 0, 40, 0, 50, 0]
    static let kept = [0, 3]

    static func run(_ merge: String, variant: Variant = .paper) throws -> MergeApplier.Output {
        let method = try Method.resolve(
            MethodOptions(
                selector: "h2o", merge: merge, variant: variant, budget: BudgetOptions(hhRatio: 0.2, recentRatio: 0.2)))
        let context = LayerContext(
            method: method, layer: 0, layers: 1, modality: [Modality](repeating: .image, count: 5), groupSize: 1)
        let m = method.merge
        return try keys.withUnsafeBufferPointer { kb in
            try values.withUnsafeBufferPointer { vb in
                var plan = HeadPlan(kept: kept, evicted: [1, 2, 4])
                (plan.pivot, plan.cosine) = Similarity.pivots(keys: kb, headDim: 2, kept: kept, evicted: plan.evicted)
                #expect(plan.pivot == [0, 1, 0])
                let expected: Float = 2 / Float(5).squareRoot()
                #expect(abs(plan.cosine[0] - expected) < 1e-6)
                #expect(plan.cosine[1] == 1 && plan.cosine[2] == 0)
                let p = m.participants([plan], context)
                return MergeApplier.apply(
                    plan, m.contributions(plan, participants: p?[0], context), keys: kb, values: vb, headDim: 2,
                    length: 5)
            }
        }
    }

    @Test func noneDropsEvictedPairs() throws {
        let o = try Self.run("none")
        #expect(o.keys == [1, 0, 0, 1] && o.values == [10, 0, 40, 0])
        #expect(o.merged == [0, 0] && o.slotOf == [0, -1, -1, 1, -1])
    }

    @Test func avgIsTheMeanOfSlotAndFoldedPairs() throws {
        let o = try Self.run("avg")
        // slot 0 <- (k0 + k1 + k4) / 3; slot 1 <- (k3 + k2) / 2.
        let third: Float = 1.0 / 3
        let v0: Float = 80.0 / 3
        #expect(o.keys == [1, third, 0, 2] && o.values == [v0, 0, 35, 0])
        #expect(o.merged == [2, 1] && o.slotOf == [0, 0, 1, 1, 0])
    }

    @Test func pivotAveragesEachPairWithItsPivotFirst() throws {
        let o = try Self.run("pivot")
        // slot 0 <- (k0 + (k1 + k0)/2 + (k4 + k0)/2) / 3 = (1 + 1.5 + 0.5, 0 + 0.5 + 0) / 3;
        // slot 1 <- (k3 + (k2 + k3)/2) / 2 = ((0, 1) + (0, 2)) / 2. Values: (10 + 15 + 30) / 3, (40 + 35) / 2.
        let k0: Float = 0.5 / 3
        let v0: Float = 55.0 / 3
        let v1: Float = 75.0 / 2
        #expect(o.keys == [1, k0, 0, 1.5])
        #expect(o.values == [v0, 0, v1, 0])
        #expect(o.merged == [2, 1])
    }

    @Test func weightedKeepsPairsAtLeastAsSimilarAsTheMean() throws {
        let o = try Self.run("weighted")
        // cosines 0.894, 1, 0: mean 0.631, so position 4 (zero key) is dropped; weights are raw cosines.
        let w = 2 / Float(5).squareRoot()
        #expect(o.slotOf == [0, 0, 1, 1, -1] && o.merged == [1, 1])
        let k0: Float = (1 + w * 2) / 2
        let k1: Float = w / 2
        let v0: Float = (10 + w * 20) / 2
        #expect(o.keys == [k0, k1, 0, 2])
        #expect(o.values == [v0, 0, 35, 0])
    }

    @Test func referenceAvgPairsFilteredPivotsWithTheFirstEvictedRows() throws {
        // Filter as weighted (positions 1 and 2 pass); contribution i is row E[i] sent to p(E[F[i]]):
        // row 1 -> pivot of 1 (slot 0), row 2 -> pivot of 2 (slot 1). Here the rows happen to align.
        let o = try Self.run("avg", variant: .reference)
        #expect(o.merged == [1, 1] && o.slotOf == [0, 0, 1, 1, -1])
        #expect(o.keys == [1.5, 0.5, 0, 2])
    }

    @Test func referenceAvgMisalignmentByHand() throws {
        // Evicted E = [1, 2, 4], filter passes only list index 1 (position 2): the one contribution
        // is row E[0] = position 1, sent to the pivot of position 2 (slot 1); slot_of records 2.
        let plan = HeadPlan(kept: [0, 3], evicted: [1, 2, 4], pivot: [0, 1, 0], cosine: [0.1, 0.9, 0.1])
        let method = try Method.resolve(
            MethodOptions(
                selector: "h2o", merge: "avg", variant: .reference,
                budget: BudgetOptions(hhRatio: 0.2, recentRatio: 0.2)))
        let context = LayerContext(
            method: method, layer: 0, layers: 1, modality: [Modality](repeating: .image, count: 5), groupSize: 1)
        let p = AverageMerge().participants([plan], context)!
        #expect(p == [[false, true, false]])
        let c = AverageMerge().contributions(plan, participants: p[0], context)
        #expect(c.count == 1 && c[0].source == 1 && c[0].accounted == 2 && c[0].slot == 1)
        let o = Self.keys.withUnsafeBufferPointer { kb in
            Self.values.withUnsafeBufferPointer { vb in
                MergeApplier.apply(plan, c, keys: kb, values: vb, headDim: 2, length: 5)
            }
        }
        // slot 1 <- (k3 + k1) / 2 = ((0, 1) + (2, 1)) / 2: position 1's row, though slot_of names 2.
        #expect(o.keys == [1, 0, 1, 1] && o.slotOf == [0, -1, 1, 1, -1])
    }

    @Test func referenceFilterAveragesOverHeads() {
        // Head 0 alone would pass index 0; averaged with head 1, only index 1 passes everywhere.
        let a = HeadPlan(kept: [], evicted: [0, 1], pivot: [0, 0], cosine: [0.9, 0.8])
        let b = HeadPlan(kept: [], evicted: [0, 1], pivot: [0, 0], cosine: [0.1, 0.6])
        #expect(SimilarityFilter.perHead([a, b]) == [[true, false], [false, true]])
        #expect(SimilarityFilter.acrossHeads([a, b]) == [[false, true], [false, true]])
    }
}
