/// Averaged merging: each pivot slot becomes the mean of itself and the pairs folded into it.
struct AverageMerge: Merge {
    static let name = "avg"

    /// Reference rule 3: the official avg merges only the positions passing weighted's filter.
    func couplesHeads(_ context: LayerContext) -> Bool { context.variant == .reference }

    func participants(_ plans: [HeadPlan], _ context: LayerContext) -> [[Bool]]? {
        context.variant == .reference ? SimilarityFilter.acrossHeads(plans) : nil
    }

    func contributions(_ plan: HeadPlan, participants: [Bool]?, _ context: LayerContext) -> [Contribution] {
        guard let participants else {
            return plan.evicted.indices.map { i in
                Contribution(
                    source: plan.evicted[i], accounted: plan.evicted[i], slot: Int(plan.pivot[i]), kind: .scaled(1))
            }
        }
        // Rule 3: the official scatter pairs the filtered pivots with the *first* evicted rows:
        // the i-th contribution is row E[i] sent to the pivot of E[F[i]].
        let filtered = plan.evicted.indices.filter { participants[$0] }
        return filtered.enumerated().map { i, f in
            Contribution(
                source: plan.evicted[i], accounted: plan.evicted[f], slot: Int(plan.pivot[f]), kind: .scaled(1))
        }
    }
}
