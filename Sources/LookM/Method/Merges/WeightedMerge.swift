/// Weighted merging: evicted pairs at least as similar as the mean take part, each weighted by
/// its raw cosine (not normalised; negative when the pivot points away).
struct WeightedMerge: Merge {
    static let name = "weighted"

    func couplesHeads(_ context: LayerContext) -> Bool { context.variant == .reference }

    func participants(_ plans: [HeadPlan], _ context: LayerContext) -> [[Bool]]? {
        context.variant == .reference ? SimilarityFilter.acrossHeads(plans) : SimilarityFilter.perHead(plans)
    }

    func contributions(_ plan: HeadPlan, participants: [Bool]?, _ context: LayerContext) -> [Contribution] {
        plan.evicted.indices.compactMap { i in
            guard participants?[i] ?? true else { return nil }
            return Contribution(
                source: plan.evicted[i], accounted: plan.evicted[i], slot: Int(plan.pivot[i]),
                kind: .scaled(plan.cosine[i]))
        }
    }
}
