/// MixKV (Liu et al., ICLR 2026; code github.com/xuyang-liu16/MixKV, `mixkv/mixkv_utils.py`,
/// `SnapKVCluster.update_kv`, method `headwisemixkv`): per kv head, importance (SnapKV's pooled
/// window attention plus the value norm) blended with diversity (how far a key points from the
/// head's mean key), weighted by how redundant the head's keys are (docs/method.md section 11).
struct MixKVSelector: Selector {
    static let name = "mixkv"
    static let flags: Set<SelectorFlag> = [.gqaAgg, .window, .kernel]
    static let ranks = true
    static let readsValues = true
    /// The importance's attention part: SnapKV's observation window, pooling and aggregation.
    var attention = SnapKVSelector()

    var aggregation: GQAAggregation? { attention.gqaAgg }
    func parameters(gqa: Bool) -> [String: CanonicalJSON.Value] { attention.parameters(gqa: gqa) }
    func need(_ context: LayerContext) -> DataNeed { attention.need(context) }

    func select(_ head: HeadInput, _ context: LayerContext) throws -> [Int] {
        TopK.stable(try scores(head, context), context.hh).sorted() + Array(recentPositions(context))
    }

    func priorities(_ head: HeadInput, _ context: LayerContext) -> [Priority]? {
        (try? scores(head, context))?.map { Priority(score: $0) }
    }

    /// The blended score of every old position, in Double. The epsilons (1e-8, and
    /// F.normalize's 1e-12) are the authors'; a constant value norm, where their code divides
    /// by zero, counts as 0.
    func scores(_ head: HeadInput, _ context: LayerContext) throws -> [Double] {
        guard head.windowSums != nil, let values = head.values,
            let attn = attention.priorities(head, context)?.map(\.score)
        else {
            throw LookMError(.other, "internal: mixkv without window sums or values")
        }
        let old = context.oldCount
        let L = context.length
        let D = head.headDim
        guard old > 0 else { return [] }
        // Diversity: cosine of each old key to the mean of the head's normalised keys (all L).
        var normalised = [Double](repeating: 0, count: L * D)
        var mean = [Double](repeating: 0, count: D)
        for t in 0..<L {
            var n = 0.0
            for d in 0..<D { n += Double(head.keys[t * D + d]) * Double(head.keys[t * D + d]) }
            let inv = 1 / max(n.squareRoot(), 1e-12)
            for d in 0..<D {
                normalised[t * D + d] = Double(head.keys[t * D + d]) * inv
                mean[d] += normalised[t * D + d]
            }
        }
        for d in 0..<D { mean[d] /= Double(L) }
        let negated = (0..<old).map { t in -(0..<D).reduce(0.0) { $0 + normalised[t * D + $1] * mean[$1] } }
        // Redundancy: the mean cosine between two different keys of the head.
        let meanNormSquared = mean.reduce(0.0) { $0 + $1 * $1 }
        let redundancy = (Double(L) * meanNormSquared - 1) / Double(L - 1)
        let valueNorms = (0..<old).map { t in
            (0..<D).reduce(0.0) { $0 + Double(values[t * D + $1]) * Double(values[t * D + $1]) }.squareRoot()
        }
        let attMean = attn.reduce(0, +) / Double(old)
        // Min-max to [0, 1], then scaled to the attention's mean so that the terms weigh alike.
        func scaled(_ x: [Double], epsilon: Double) -> [Double] {
            let lo = x.min() ?? 0
            let hi = x.max() ?? 0
            let unit = x.map { hi - lo + epsilon > 0 ? ($0 - lo) / (hi - lo + epsilon) : 0 }
            let m = unit.reduce(0, +) / Double(unit.count)
            return unit.map { $0 * (attMean / (m + 1e-8)) }
        }
        let diversity = scaled(negated, epsilon: 1e-8)
        let valueTerm = scaled(valueNorms, epsilon: 0)
        return (0..<old).map { t in redundancy * diversity[t] + (1 - redundancy) * (attn[t] + valueTerm[t]) }
    }
}

extension MixKVSelector {
    init(_ flags: SelectorFlags, variant: Variant, merge: any Merge) throws {
        // SnapKV's checks and defaults for the window, kernel and aggregation (paper variant:
        // `--variant reference` has no MixKV, which Method.resolve refuses).
        self.init(attention: try SnapKVSelector(flags, variant: .paper, merge: merge))
    }
}
