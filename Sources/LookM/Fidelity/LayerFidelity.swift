import CKernels

/// Fidelity of one layer, every kv head in parallel: the dump's full-prompt attention (the
/// reference) and a compressed layer's against it. What report (a cache from a file) and sweep
/// (settings computed in memory) share.
enum LayerFidelity {
    /// The dump's side of fidelity for one layer (full-prompt attention of every query head), every
    /// kv head in parallel: what `measure` compares against, for any number of settings.
    static func references(input: LayerInput, queries: FidelityQueries, dump: DumpReader, workspaces: [Workspace])
        throws -> [[Fidelity.Reference]?]
    {
        let s = dump.shape
        let D = s.headDim
        let group = s.groupSize
        return try Parallel.map(s.numKVHeads, threads: workspaces.count) { g, worker in
            let ws = workspaces[worker]
            return queries.reference(
                heads: g * group..<(g + 1) * group, keys: try input.keyRows(head: g, ws),
                values: try input.valueRows(head: g, ws), length: s.seqLen, headDim: D, scale: dump.attnScale,
                workspace: ws)
        }
    }

    /// Fidelity of one layer's compressed heads against the dump's, every kv head in parallel.
    /// `references` (from `references(...)`) saves recomputing the full attention per setting.
    static func measure(
        layer i: Int, input: LayerInput, queries: FidelityQueries, references: [[Fidelity.Reference]?]? = nil,
        heads: [CompressedHead], dump: DumpReader, workspaces: [Workspace], into acc: inout FidelityAccumulator,
        check: (@Sendable (Int, CompressedHead, lookm_rows) throws -> Void)? = nil
    ) throws {
        let results = try compute(
            input: input, queries: queries, references: references, heads: heads, dump: dump, workspaces: workspaces,
            check: check)
        add(results, layer: i, source: queries.source, groupSize: dump.shape.groupSize, into: &acc)
    }

    /// One kv head's measurements: per query head, and the merge shifts.
    typealias HeadResult = (
        fidelity: [HeadFidelity],
        shift: (key: (sum: Double, max: Double), value: (sum: Double, max: Double), count: Int)
    )

    /// `measure` without the accumulator, for a caller that runs it in the background (report).
    /// `released(g)` is called once kv head `g` is measured (its raw keys and values are read as
    /// stored): the thread that owns HDF5 may then read the next layer's head `g` into the same
    /// buffers.
    static func compute(
        input: LayerInput, queries: FidelityQueries, references: [[Fidelity.Reference]?]? = nil,
        heads: [CompressedHead], dump: DumpReader, workspaces: [Workspace],
        released: (@Sendable (Int) -> Void)? = nil,
        check: (@Sendable (Int, CompressedHead, lookm_rows) throws -> Void)? = nil
    ) throws -> [HeadResult] {
        let s = dump.shape
        let D = s.headDim
        let group = s.groupSize
        let scale = dump.attnScale
        return try Parallel.map(s.numKVHeads, threads: workspaces.count) { g, worker -> HeadResult in
            let ws = workspaces[worker]
            defer { released?(g) }
            let k = try input.keyRows(head: g, ws)
            let v = try input.valueRows(head: g, ws)
            try check?(g, heads[g], k)
            let queryHeads = g * group..<(g + 1) * group
            let reference =
                references?[g]
                ?? queries.reference(
                    heads: queryHeads, keys: k, values: v, length: s.seqLen, headDim: D, scale: scale, workspace: ws)
            let perQuery = queries.measure(
                heads: queryHeads, reference: reference, headDim: D, scale: scale,
                compressed: heads[g], modality: dump.tokens.modality, workspace: ws)
            return (perQuery, Fidelity.shift(head: heads[g], keys: k, values: v, D: D))
        }
    }

    /// Adds one layer's `compute` results, kv head by kv head in order.
    static func add(
        _ results: [HeadResult], layer i: Int, source: QuerySource, groupSize group: Int,
        into acc: inout FidelityAccumulator
    ) {
        acc.source = source
        for (g, r) in results.enumerated() {
            for (j, f) in r.fidelity.enumerated() { acc.add(layer: i, head: g * group + j, f) }
            acc.addShift(layer: i, kvHead: g, r.shift)
        }
    }
}
