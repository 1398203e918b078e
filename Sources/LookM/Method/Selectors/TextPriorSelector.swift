/// LOOK-M's text-prior eviction: text tokens first, image tokens by accumulated attention.
struct TextPriorSelector: Selector {
    static let name = "text-prior"
    static let ranks = true
    static let flags: Set<SelectorFlag> = [.gqaAgg]
    var gqaAgg: GQAAggregation = .mean

    init(gqaAgg: GQAAggregation = .mean) { self.gqaAgg = gqaAgg }
    init(_ flags: SelectorFlags, variant: Variant, merge: any Merge) { self.init(gqaAgg: flags.gqaAgg ?? .mean) }

    var aggregation: GQAAggregation? { gqaAgg }
    func parameters(gqa: Bool) -> [String: CanonicalJSON.Value] { gqa ? ["gqa_agg": .string(gqaAgg.rawValue)] : [:] }
    func need(_ context: LayerContext) -> DataNeed { .scores }

    func select(_ head: HeadInput, _ context: LayerContext) throws -> [Int] {
        let scores = head.scores!
        let old = context.oldCount
        let hh = context.hh
        let isText = { (t: Int) in context.modality[t] == .text }
        var chosen: [Int]
        switch context.variant {
        case .paper:
            // Rank (text first, higher score, lower position); image tokens compete by exact score.
            let text = (0..<old).filter(isText)
            if text.count >= hh {
                chosen = TopK.stable(text.map { Double(scores[$0]) }, hh).map { text[$0] }
            } else {
                let images = (0..<old).filter { !isText($0) }
                chosen = text + TopK.stable(images.map { Double(scores[$0]) }, hh - text.count).map { images[$0] }
            }
        case .reference:
            // The official code shifts image scores by one Float32 addition of -65516 (which merges
            // close scores into ties), takes torch.topk of the old part, and then keeps every old
            // position whose shifted score is not negative: all old text, even beyond hh (rules 1, 7).
            let shift = Float(-65516)
            let shifted = (0..<old).map { isText($0) ? scores[$0] : scores[$0] + shift }
            var keep = Set(TopK.torch(shifted, hh))
            for t in 0..<old where isText(t) { keep.insert(t) }
            chosen = Array(keep)
        }
        return chosen.sorted() + Array(recentPositions(context))
    }

    /// Text before images, each by score: the order `select` keeps in (paper variant).
    func priorities(_ head: HeadInput, _ context: LayerContext) -> [Priority]? {
        guard context.variant == .paper, let scores = head.scores else { return nil }
        return (0..<context.oldCount).map {
            Priority(tier: context.modality[$0] == .text ? 1 : 0, score: Double(scores[$0]))
        }
    }
}
