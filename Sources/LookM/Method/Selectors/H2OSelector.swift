/// H2O: the heavy hitters by accumulated attention, no modality preference.
struct H2OSelector: Selector {
    static let name = "h2o"
    static let ranks = true
    static let flags: Set<SelectorFlag> = [.gqaAgg]
    var gqaAgg: GQAAggregation = .mean
    /// Reference rules 2 and 8: paired with a merge, the official code makes the first four
    /// positions heavy hitters (the merge classes' sinks); plain official h2o does not.
    var officialSinks = false

    init(gqaAgg: GQAAggregation = .mean, officialSinks: Bool = false) {
        self.gqaAgg = gqaAgg
        self.officialSinks = officialSinks
    }

    init(_ flags: SelectorFlags, variant: Variant, merge: any Merge) {
        self.init(
            gqaAgg: flags.gqaAgg ?? .mean, officialSinks: variant == .reference && type(of: merge).name != NoMerge.name)
    }

    var aggregation: GQAAggregation? { gqaAgg }
    func parameters(gqa: Bool) -> [String: CanonicalJSON.Value] { gqa ? ["gqa_agg": .string(gqaAgg.rawValue)] : [:] }
    func need(_ context: LayerContext) -> DataNeed { .scores }

    func select(_ head: HeadInput, _ context: LayerContext) throws -> [Int] {
        let scores = head.scores!
        let old = context.oldCount
        let hh = context.hh
        var chosen: [Int]
        switch context.variant {
        case .paper:
            chosen = TopK.stable((0..<old).map { Double(scores[$0]) }, hh)
        case .reference where officialSinks:
            // Rule 2 and 8: the official merge classes set the first four scores to +infinity and
            // take a descending sort, so the sinks are 4 of the hh heavy hitters (plain h2o is not).
            var values = (0..<old).map { Double(scores[$0]) }
            for t in 0..<min(4, old) { values[t] = .infinity }
            chosen = TopK.stable(values, hh)
        case .reference:
            chosen = TopK.torch(Array(scores[0..<old]), hh)
        }
        return chosen.sorted() + Array(recentPositions(context))
    }

    func priorities(_ head: HeadInput, _ context: LayerContext) -> [Priority]? {
        guard context.variant == .paper, let scores = head.scores else { return nil }
        return (0..<context.oldCount).map { Priority(score: Double(scores[$0])) }
    }
}
