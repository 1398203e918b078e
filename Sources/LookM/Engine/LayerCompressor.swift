/// One setting (selector + merge) applied to one loaded layer, in memory: what `compress` writes
/// and what `sweep` evaluates. Per kv head in parallel: select and find pivots; then the merge's
/// participants (the reference filter needs every head's similarities); then merge.
struct LayerCompressor {
    let selector: any Selector
    let merge: any Merge

    init(selector: any Selector, merge: any Merge) {
        self.selector = selector
        self.merge = merge
    }

    init(_ method: Method) {
        self.init(selector: method.selector, merge: method.merge)
    }

    func run(_ input: LayerInput, layer: DumpLayer, dump: DumpReader, context: LayerContext, workspaces: [Workspace])
        throws -> LayerResult
    {
        if let reason = try prepare(input, layer: layer, dump: dump, context: context, threads: workspaces.count) {
            return .copied(reason)
        }
        return try compute(input, shape: dump.shape, context: context, workspaces: workspaces)
    }

    /// The parallel part of `run`, after `prepare` (no HDF5 call: it may run while another thread
    /// reads and writes). `released(g)` is called once kv head `g`'s raw keys and values are no
    /// longer needed; `finish` runs on the worker on each finished head, with its workspace (compress encodes there).
    func compute(
        _ input: LayerInput, shape s: ModelShape, context: LayerContext, workspaces: [Workspace],
        released: (@Sendable (Int) -> Void)? = nil, finish: (@Sendable (inout CompressedHead, Workspace) -> Void)? = nil
    ) throws -> LayerResult {
        let G = s.numKVHeads
        let threads = workspaces.count
        guard merge.couplesHeads(context) else {
            // Each head on its own, start to end: its keys are converted once and stay in cache
            // from selection through the similarity GEMM to the merge.
            let heads = try Parallel.map(G, threads: threads) { g, worker in
                let ws = workspaces[worker]
                defer { released?(g) }
                let kb = try input.keys(head: g, ws)
                let vb = try input.values(head: g, ws)
                released?(g)
                var h = try head(g, keys: kb, values: vb, input: input, context: context, workspace: ws)
                finish?(&h, ws)
                return h
            }
            return try result(heads, context)
        }
        let plans: [HeadPlan] = try Parallel.map(G, threads: threads) { g, worker in
            let ws = workspaces[worker]
            let kb = try input.keys(head: g, ws)
            return try plan(g, keys: kb, input: input, context: context, workspace: ws)
        }
        let participants = merge.participants(plans, context)
        let heads: [CompressedHead] = try Parallel.map(G, threads: threads) { g, worker in
            let ws = workspaces[worker]
            defer { released?(g) }
            let kb = try input.keys(head: g, ws)
            let vb = try input.values(head: g, ws)
            released?(g)
            var h = apply(
                plans[g], participants: participants?[g], keys: kb, values: vb, context: context, length: s.seqLen)
            finish?(&h, ws)
            return h
        }
        return try result(heads, context)
    }

    /// Why the layer is copied unchanged; else loads what the selector reads beyond keys (on the
    /// calling thread: HDF5) and returns nil.
    func prepare(_ input: LayerInput, layer: DumpLayer, dump: DumpReader, context: LayerContext, threads: Int) throws
        -> String?
    {
        if let reason = selector.copyReason(context) { return reason }
        try LayerAttention.load(
            selector.need(context), into: input, from: layer, dump: dump,
            selector: type(of: selector).name, threads: threads)
        return nil
    }

    /// One kv head selected, paired with pivots and merged, for merges that do not couple heads.
    func head(
        _ g: Int, keys kb: UnsafeBufferPointer<Float>, values vb: UnsafeBufferPointer<Float>, input: LayerInput,
        context: LayerContext, workspace ws: Workspace
    ) throws -> CompressedHead {
        let plan = try plan(g, keys: kb, input: input, context: context, workspace: ws)
        return apply(
            plan, participants: merge.participants([plan], context)?.first, keys: kb, values: vb, context: context,
            length: kb.count / input.key.rowLength)
    }

    /// Selection and, when the merge uses them, pivots (the similarity GEMM) of kv head `g`.
    private func plan(
        _ g: Int, keys kb: UnsafeBufferPointer<Float>, input: LayerInput, context: LayerContext,
        workspace ws: Workspace
    ) throws -> HeadPlan {
        let L = kb.count / input.key.rowLength
        let D = input.key.rowLength
        let group = (g * context.groupSize)..<((g + 1) * context.groupSize)
        let scores = input.scores.map { all in Scores.aggregate(group.map { all[$0] }, selector.aggregation ?? .mean) }
        let windowSums = input.windowSums.map { all in group.map { all[$0] } }
        let kept = try selector.select(
            HeadInput(kvHead: g, headDim: D, keys: kb, scores: scores, windowSums: windowSums), context)
        var isKept = [Bool](repeating: false, count: L)
        for t in kept { isKept[t] = true }
        var plan = HeadPlan(kept: kept, evicted: (0..<L).filter { !isKept[$0] })
        if merge.usesPivots {
            (plan.pivot, plan.cosine) = Similarity.pivots(
                keys: kb, headDim: D, kept: plan.kept, evicted: plan.evicted, workspace: ws)
        }
        return plan
    }

    private func apply(
        _ plan: HeadPlan, participants: [Bool]?, keys kb: UnsafeBufferPointer<Float>,
        values vb: UnsafeBufferPointer<Float>,
        context: LayerContext, length L: Int
    ) -> CompressedHead {
        let contributions = merge.contributions(plan, participants: participants, context)
        let o = MergeApplier.apply(plan, contributions, keys: kb, values: vb, headDim: kb.count / L, length: L)
        return CompressedHead(
            position: plan.kept.map { Int32($0) }, keys: o.keys, values: o.values, merged: o.merged, slotOf: o.slotOf)
    }

    /// Every kv head must keep the same number of slots (the cache stores them as one tensor).
    private func result(_ heads: [CompressedHead], _ context: LayerContext) throws -> LayerResult {
        let kept = heads.first?.position.count ?? 0
        guard heads.allSatisfy({ $0.position.count == kept }) else {
            throw LookMError(.other, "internal: kv heads of layer \(context.layer) kept different counts")
        }
        return .compressed(kept: kept, heads: heads)
    }
}
