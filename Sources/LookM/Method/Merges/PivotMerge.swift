/// LOOK-M's pivotal merging: each evicted pair is first averaged with its pivot, then the pivot
/// slot becomes the mean of itself and those averages.
struct PivotMerge: Merge {
    static let name = "pivot"

    func contributions(_ plan: HeadPlan, participants: [Bool]?, _ context: LayerContext) -> [Contribution] {
        plan.evicted.indices.map { i in
            Contribution(
                source: plan.evicted[i], accounted: plan.evicted[i], slot: Int(plan.pivot[i]), kind: .pivotAverage)
        }
    }
}
