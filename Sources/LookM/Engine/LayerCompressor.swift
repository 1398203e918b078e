/// One setting (selector + merge) applied to one loaded layer, in memory: what `compress` writes
/// and what `sweep` evaluates. Per kv head in parallel: select and find pivots; then the merge's
/// participants (the reference filter needs every head's similarities); then merge. A head
/// allocation other than uniform first ranks every head's positions and shares the layer's
/// heavy hitters among the heads (docs/method.md section 9).
struct LayerCompressor {
    let selector: any Selector
    let merge: any Merge
    let heads: any HeadAllocation

    init(selector: any Selector, merge: any Merge, heads: any HeadAllocation = UniformHeads()) {
        self.selector = selector
        self.merge = merge
        self.heads = heads
    }

    init(_ method: Method) {
        self.init(selector: method.selector, merge: method.merge, heads: method.headAllocation)
    }

    /// Whether the heads of a layer depend on one another before they merge (the reference filter,
    /// or a head allocation): then every head is read twice, and none is released after the first.
    func couplesHeads(_ context: LayerContext) -> Bool {
        merge.couplesHeads(context) || !(heads is UniformHeads)
    }

    /// Each kv head's context: the layer's, with the head's own heavy-hitter count under a head allocation.
    private func headContexts(_ input: LayerInput, _ context: LayerContext, G: Int, workspaces: [Workspace]) throws
        -> [LayerContext]
    {
        guard !(heads is UniformHeads) else { return Array(repeating: context, count: G) }
        let priorities: [[Priority]] = try Parallel.map(G, threads: workspaces.count) { g, worker in
            let kb = try input.keys(head: g, workspaces[worker])
            let vb = type(of: selector).readsValues ? try input.values(head: g, workspaces[worker]) : nil
            guard
                var p = selector.priorities(headInput(g, keys: kb, values: vb, input: input, context: context), context)
            else {
                throw LookMError(.other, "internal: selector \(type(of: selector).name) gives no ranking")
            }
            // Best first, on the workers (the allocation itself then runs in one short pass).
            p.sort(by: >)
            return p
        }
        let counts = heads.heavyHitters(priorities, hh: context.hh, recent: context.recent)
        guard counts.count == G, counts.reduce(0, +) == G * context.hh else {
            throw LookMError(
                .other, "internal: head allocation of layer \(context.layer) does not keep the layer's budget")
        }
        return counts.map { context.withHeavyHitters($0) }
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
        guard couplesHeads(context) else {
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
        let contexts = try headContexts(input, context, G: G, workspaces: workspaces)
        let plans: [HeadPlan] = try Parallel.map(G, threads: threads) { g, worker in
            let ws = workspaces[worker]
            let kb = try input.keys(head: g, ws)
            let vb = type(of: selector).readsValues ? try input.values(head: g, ws) : nil
            return try plan(g, keys: kb, values: vb, input: input, context: contexts[g], workspace: ws)
        }
        let participants = merge.participants(plans, context)
        let heads: [CompressedHead] = try Parallel.map(G, threads: threads) { g, worker in
            let ws = workspaces[worker]
            defer { released?(g) }
            let kb = try input.keys(head: g, ws)
            let vb = try input.values(head: g, ws)
            released?(g)
            var h = apply(
                plans[g], participants: participants?[g], keys: kb, values: vb, context: contexts[g], length: s.seqLen)
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
        let plan = try plan(g, keys: kb, values: vb, input: input, context: context, workspace: ws)
        return apply(
            plan, participants: merge.participants([plan], context)?.first, keys: kb, values: vb, context: context,
            length: kb.count / input.key.rowLength)
    }

    /// Selection and, when the merge uses them, pivots (the similarity GEMM) of kv head `g`.
    private func plan(
        _ g: Int, keys kb: UnsafeBufferPointer<Float>, values vb: UnsafeBufferPointer<Float>?, input: LayerInput,
        context: LayerContext, workspace ws: Workspace
    ) throws -> HeadPlan {
        let L = kb.count / input.key.rowLength
        let D = input.key.rowLength
        let kept = try selector.select(headInput(g, keys: kb, values: vb, input: input, context: context), context)
        var isKept = [Bool](repeating: false, count: L)
        for t in kept { isKept[t] = true }
        var plan = HeadPlan(kept: kept, evicted: (0..<L).filter { !isKept[$0] })
        if merge.usesPivots {
            (plan.pivot, plan.cosine) = Similarity.pivots(
                keys: kb, headDim: D, kept: plan.kept, evicted: plan.evicted, workspace: ws)
        }
        return plan
    }

    /// What the selector sees of kv head `g`: its keys, and its query heads' scores or window sums.
    private func headInput(
        _ g: Int, keys kb: UnsafeBufferPointer<Float>, values vb: UnsafeBufferPointer<Float>?, input: LayerInput,
        context: LayerContext
    ) -> HeadInput {
        let group = (g * context.groupSize)..<((g + 1) * context.groupSize)
        let scores = input.scores.map { all in Scores.aggregate(group.map { all[$0] }, selector.aggregation ?? .mean) }
        let windowSums = input.windowSums.map { all in group.map { all[$0] } }
        return HeadInput(
            kvHead: g, headDim: input.key.rowLength, keys: kb, scores: scores, windowSums: windowSums, values: vb)
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

    /// `kept` is the slots per kv head: the same for every head, or under a head allocation their
    /// mean, which is the layer's count since the allocation keeps the layer's total.
    private func result(_ heads: [CompressedHead], _ context: LayerContext) throws -> LayerResult {
        let total = heads.reduce(0) { $0 + $1.position.count }
        let kept = heads.isEmpty ? 0 : total / heads.count
        guard total == kept * heads.count,
            (self.heads is UniformHeads) ? heads.allSatisfy({ $0.position.count == kept }) : true
        else {
            throw LookMError(.other, "internal: kv heads of layer \(context.layer) kept different counts")
        }
        return .compressed(kept: kept, heads: heads)
    }
}
