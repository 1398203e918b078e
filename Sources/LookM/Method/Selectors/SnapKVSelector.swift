/// SnapKV: attention of the last prompt queries (the observation window), summed over the old
/// columns, average-pooled, aggregated over the kv head's query heads; top hh.
struct SnapKVSelector: Selector {
    static let name = "snapkv"
    static let ranks = true
    static let flags: Set<SelectorFlag> = [.gqaAgg, .window, .kernel]
    /// Observation window in queries; nil under `--variant reference` (the recent count, rule 11).
    var window: Int? = 32
    var kernel = 7
    var gqaAgg: GQAAggregation = .mean

    var aggregation: GQAAggregation? { gqaAgg }

    func parameters(gqa: Bool) -> [String: CanonicalJSON.Value] {
        var o: [String: CanonicalJSON.Value] = ["kernel": .int(kernel)]
        if let window { o["window"] = .int(window) }
        if gqa { o["gqa_agg"] = .string(gqaAgg.rawValue) }
        return o
    }

    /// Rows of the observation window: `window` (at most L), or under reference the recent count.
    func windowRows(_ context: LayerContext) -> Int {
        window.map { min($0, context.length) } ?? context.recent
    }

    func need(_ context: LayerContext) -> DataNeed { .windowRows(windowRows(context)) }

    func copyReason(_ context: LayerContext) -> String? {
        guard context.variant == .reference else {
            if context.hh + context.recent == 0 { return "the budget rounds to no token" }
            return context.length <= context.hh + context.recent ? "the prompt fits the budget" : nil
        }
        // Rule 11: the official code compresses unless L < hh + w (strict), images or not.
        if context.recent == 0 { return "the observation window rounds to no token" }
        return context.length < context.hh + context.recent ? "the prompt fits the budget" : nil
    }

    func select(_ head: HeadInput, _ context: LayerContext) throws -> [Int] {
        let old = context.oldCount
        let sums = head.windowSums!
        let chosen: [Int]
        switch context.variant {
        case .paper:
            chosen = TopK.stable(pooledScores(sums, old: old), context.hh)
        case .reference:
            // Float32 throughout, as torch runs avg_pool1d on the float32 column sums.
            let column = sums[0][0..<old].map { Float($0) }
            chosen = TopK.torch(Self.poolFloat(column, kernel), context.hh)
        }
        return chosen.sorted() + Array(recentPositions(context))
    }

    /// Paper variant: each query head's window sums over the old positions, pooled, then aggregated.
    private func pooledScores(_ sums: [[Double]], old: Int) -> [Double] {
        Scores.aggregate(sums.map { Self.pool(Array($0[0..<old]), kernel) }, gqaAgg)
    }

    func priorities(_ head: HeadInput, _ context: LayerContext) -> [Priority]? {
        guard context.variant == .paper, let sums = head.windowSums else { return nil }
        return pooledScores(sums, old: context.oldCount).map { Priority(score: $0) }
    }

    /// Average pooling of width `k` (odd), zero padding counted: every output is divided by `k`.
    static func pool(_ x: [Double], _ k: Int) -> [Double] {
        let half = k / 2
        return x.indices.map { i in
            var s = 0.0
            for j in max(0, i - half)...min(x.count - 1, i + half) { s += x[j] }
            return s / Double(k)
        }
    }

    static func poolFloat(_ x: [Float], _ k: Int) -> [Float] {
        let half = k / 2
        return x.indices.map { i in
            var s: Float = 0
            for j in (i - half)...(i + half) where j >= 0 && j < x.count { s += x[j] }
            return s / Float(k)
        }
    }
}

extension SnapKVSelector {
    init(_ flags: SelectorFlags, variant: Variant, merge: any Merge) throws {
        let gqaAgg = flags.gqaAgg ?? .mean
        if variant == .reference {
            guard flags.window == nil && flags.kernel == nil else {
                throw LookMError.usage(
                    "--variant reference uses the official SnapKV parameters (window = recent tokens, kernel 5); drop --window/--kernel"
                )
            }
            self.init(window: nil, kernel: 5, gqaAgg: gqaAgg)
            return
        }
        let w = flags.window ?? 32
        let k = flags.kernel ?? 7
        guard w >= 1 else { throw LookMError.usage("--window \(w): must be at least 1") }
        guard k >= 1, k % 2 == 1 else { throw LookMError.usage("--kernel \(k): must be a positive odd number, e.g. 7") }
        self.init(window: w, kernel: k, gqaAgg: gqaAgg)
    }
}
