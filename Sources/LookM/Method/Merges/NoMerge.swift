/// Evicted pairs are dropped (`slot_of = -1`).
struct NoMerge: Merge {
    static let name = "none"
    var usesPivots: Bool { false }
    func contributions(_ plan: HeadPlan, participants: [Bool]?, _ context: LayerContext) -> [Contribution] { [] }
}
