/// One setting (selector + merge) applied to one loaded layer, in memory: what `compress` writes
/// and what `sweep` evaluates. Per kv head in parallel: select and find pivots; then the merge's
/// participants (the reference filter needs every head's similarities); then merge.
struct LayerCompressor {
    let selector: any Selector
    let merge: any Merge

    /// One kv head of a compressed layer.
    struct Head {
        var position: [Int32]
        var keys: [Float]
        var values: [Float]
        var merged: [Int32]
        var slotOf: [Int32]
        var mergedCount: Int { merged.reduce(0) { $0 + Int($1) } }
        var droppedCount: Int { slotOf.lazy.filter { $0 < 0 }.count }
    }

    enum Result {
        /// The layer stays as it is, for this reason.
        case copied(String)
        case compressed(kept: Int, heads: [Head])
    }

    func run(_ input: LayerInput, layer: DumpLayer, dump: DumpReader, context: LayerContext, workspaces: [Workspace]) throws -> Result {
        if let reason = selector.copyReason(context) { return .copied(reason) }
        let s = dump.shape, L = s.seqLen, D = s.headDim, G = s.numKVHeads, threads = workspaces.count
        try LayerAttention.load(selector.need(context), into: input, from: layer, dump: dump,
                                selector: type(of: selector).name, threads: threads)
        let selector = self.selector, merge = self.merge

        let plans: [HeadPlan] = try Compressor.parallelMap(G, threads) { g, worker in
            let ws = workspaces[worker]
            let kb = try input.floats(input.key, input.keyRaw, head: g, into: ws.floats(3, L * D))
            let group = (g * context.groupSize)..<((g + 1) * context.groupSize)
            let scores = input.scores.map { all in Scores.aggregate(group.map { all[$0] }, context.settings.gqaAgg) }
            let windowSums = input.windowSums.map { all in group.map { all[$0] } }
            let head = HeadInput(kvHead: g, headDim: D, keys: kb, scores: scores, windowSums: windowSums)
            let kept = try selector.select(head, context)
            var isKept = [Bool](repeating: false, count: L)
            for t in kept { isKept[t] = true }
            var plan = HeadPlan(kept: kept, evicted: (0..<L).filter { !isKept[$0] })
            if merge.usesPivots {
                (plan.pivot, plan.cosine) = Similarity.pivots(keys: kb, headDim: D, kept: plan.kept, evicted: plan.evicted, workspace: ws)
            }
            return plan
        }
        let kept = plans[0].kept.count
        guard plans.allSatisfy({ $0.kept.count == kept }) else {
            throw LookMError(.other, "internal: kv heads of layer \(context.layer) kept different counts")
        }
        let participants = merge.participants(plans, context)

        let heads: [Head] = try Compressor.parallelMap(G, threads) { g, worker in
            let ws = workspaces[worker]
            let kb = try input.floats(input.key, input.keyRaw, head: g, into: ws.floats(3, L * D))
            let vb = try input.floats(input.value, input.valueRaw, head: g, into: ws.floats(4, L * D))
            let contributions = merge.contributions(plans[g], participants: participants?[g], context)
            let o = MergeApplier.apply(plans[g], contributions, keys: kb, values: vb, headDim: D, length: L)
            return Head(position: plans[g].kept.map { Int32($0) }, keys: o.keys, values: o.values, merged: o.merged, slotOf: o.slotOf)
        }
        return .compressed(kept: kept, heads: heads)
    }
}
