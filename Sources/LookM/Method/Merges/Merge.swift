/// What a kv head's selection looks like once pivots are known.
struct HeadPlan {
    /// Kept positions, ascending: slot j holds `kept[j]`.
    var kept: [Int]
    /// Evicted positions, ascending (the "evicted list").
    var evicted: [Int]
    /// Per evicted list index: the pivot's slot and the cosine to it (empty for `none`).
    var pivot: [Int32] = []
    var cosine: [Float] = []
}

/// One evicted pair folded into a slot.
struct Contribution {
    /// The position whose key and value rows are added.
    var source: Int
    /// The position `slot_of` accounts to `slot` (differs from `source` only under reference rule 3).
    var accounted: Int
    var slot: Int
    var kind: Kind

    enum Kind {
        /// `weight * x[source]`.
        case scaled(Float)
        /// `(x[source] + x[kept[slot]]) / 2`, with the pivot's original row.
        case pivotAverage
    }
}

/// Folds evicted pairs into kept slots (docs/method.md section 4). One type per merge, registered by
/// name in `MergeRegistry`; all share `MergeApplier` for the arithmetic.
protocol Merge: Sendable {
    static var name: String { get }
    /// `none` needs no pivots (and so no similarity GEMM).
    var usesPivots: Bool { get }
    /// Which evicted list indices take part, per head; nil means all. It sees every head of the
    /// layer at once because the reference filter averages similarities over heads (rule 4).
    func participants(_ plans: [HeadPlan], _ context: LayerContext) -> [[Bool]]?
    /// Whether `participants` of one head depend on other heads (the reference filter): then
    /// every head's pivots must be known before any head merges.
    func couplesHeads(_ context: LayerContext) -> Bool
    /// One head's contributions, in ascending evicted order (the order sums accumulate in).
    func contributions(_ plan: HeadPlan, participants: [Bool]?, _ context: LayerContext) -> [Contribution]
}

extension Merge {
    var usesPivots: Bool { true }
    func participants(_ plans: [HeadPlan], _ context: LayerContext) -> [[Bool]]? { nil }
    func couplesHeads(_ context: LayerContext) -> Bool { false }
}

/// Every merge `--merge` can name. Adding one is a new file and a line here.
enum MergeRegistry {
    static let all: [any Merge] = [NoMerge(), AverageMerge(), PivotMerge(), WeightedMerge()]
    static var names: [String] { all.map { type(of: $0).name } }

    static func make(_ name: String) throws -> any Merge {
        guard let merge = all.first(where: { type(of: $0).name == name }) else {
            throw LookMError.usage("unknown merge '\(name)'; use one of \(names.joined(separator: ", "))")
        }
        return merge
    }
}

/// The filter of weighted merging: evicted list indices whose similarity reaches the mean.
enum SimilarityFilter {
    /// Paper: per head, `cos(e) >= mean` of that head's cosines (mean in Double).
    static func perHead(_ plans: [HeadPlan]) -> [[Bool]] {
        plans.map { p in
            let mean = p.cosine.reduce(0.0) { $0 + Double($1) } / Double(max(p.cosine.count, 1))
            return p.cosine.map { Double($0) >= mean }
        }
    }

    /// Reference rule 4: per list index, the cosine averaged over heads, compared (>=) with the
    /// mean over all heads and indices; the same indices pass in every head. Both means are
    /// Double sums of the Float32 cosines (a Float32 running sum flips margins of 1e-7).
    static func acrossHeads(_ plans: [HeadPlan]) -> [[Bool]] {
        let n = plans.first?.cosine.count ?? 0
        guard n > 0 else { return plans.map { _ in [] } }
        var perIndex = [Double](repeating: 0, count: n)
        for p in plans { for i in 0..<n { perIndex[i] += Double(p.cosine[i]) } }
        let total = perIndex.reduce(0, +)
        let heads = Double(plans.count)
        let overall = total / (heads * Double(n))
        let pass = perIndex.map { $0 / heads >= overall }
        return plans.map { _ in pass }
    }
}

/// The arithmetic every merge shares: each slot starts as its kept row, contributions add in
/// order in Float32, and each touched slot is divided once by 1 + its contributions.
enum MergeApplier {
    struct Output {
        var keys: [Float]
        var values: [Float]
        var merged: [Int32]
        var slotOf: [Int32]
    }

    static func apply(
        _ plan: HeadPlan, _ contributions: [Contribution], keys: UnsafeBufferPointer<Float>,
        values: UnsafeBufferPointer<Float>, headDim D: Int, length L: Int
    ) -> Output {
        let K = plan.kept.count
        var counts = [Int32](repeating: 0, count: K)
        var slotOf = [Int32](repeating: -1, count: L)
        for (j, t) in plan.kept.enumerated() { slotOf[t] = Int32(j) }
        for c in contributions {
            counts[c.slot] += 1
            slotOf[c.accounted] = Int32(c.slot)
        }
        // Row loops over raw pointers: no bounds checks, so each row operation vectorises. Every
        // element still sees the same operations in the same order (contributions in evicted
        // order), so the sums are bit for bit those of the element-by-element definition.
        func fold(_ xb: UnsafeBufferPointer<Float>) -> [Float] {
            var sums = [Float](repeating: 0, count: K * D)
            let x = xb.baseAddress!
            sums.withUnsafeMutableBufferPointer { sb in
                let out = sb.baseAddress!
                for (j, t) in plan.kept.enumerated() { (out + j * D).update(from: x + t * D, count: D) }
                for c in contributions {
                    let src = x + c.source * D
                    let dst = out + c.slot * D
                    switch c.kind {
                    case .scaled(let w):
                        for d in 0..<D { dst[d] += w * src[d] }
                    case .pivotAverage:
                        let pivot = x + plan.kept[c.slot] * D
                        for d in 0..<D { dst[d] += (src[d] + pivot[d]) / 2 }
                    }
                }
                for j in 0..<K where counts[j] > 0 {
                    let n = Float(1 + counts[j])
                    let row = out + j * D
                    for d in 0..<D { row[d] /= n }
                }
            }
            return sums
        }
        return Output(keys: fold(keys), values: fold(values), merged: counts, slotOf: slotOf)
    }
}
