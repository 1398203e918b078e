import CKernels

/// A sweep layer computed head by head: each kv head's keys and values are converted once, its
/// full-prompt attention (the fidelity reference) computed once, and then every setting selects,
/// merges and is measured on them while they are hot in cache. Same arithmetic, in the same order
/// per setting, as compressing and measuring setting by setting, so the results are identical.
enum HeadwiseSweep {
    /// Applies when no merge needs other heads before merging (the reference filter), and the
    /// settings' SnapKV windows agree (a layer holds one set of window sums).
    static func applies(_ compressors: [LayerCompressor], _ contexts: [LayerContext]) -> Bool {
        var windows = Set<Int>()
        for (c, context) in zip(compressors, contexts) {
            if c.couplesHeads(context) { return false }
            if case .windowRows(let rows) = c.selector.need(context) { windows.insert(rows) }
        }
        return windows.count <= 1
    }

    /// What one setting left of one kv head: its fidelity and merge shifts, and its slot count.
    private struct HeadOutcome {
        var fidelity: [HeadFidelity]
        var shift: (key: (sum: Double, max: Double), value: (sum: Double, max: Double), count: Int)
        var kept: Int
    }

    /// Returns each setting's result (`.compressed` with no heads: they were measured and dropped).
    static func run(
        _ compressors: [LayerCompressor], _ contexts: [LayerContext], input: LayerInput, layer: DumpLayer,
        queries: FidelityQueries, dump: DumpReader, workspaces: [Workspace],
        into accumulators: inout [FidelityAccumulator]
    ) throws -> [LayerResult] {
        let s = dump.shape
        let D = s.headDim
        let group = s.groupSize
        let i = contexts.first?.layer ?? 0
        // HDF5 reads (scores, window rows) on this thread, before the workers start.
        let copied = try zip(compressors, contexts).map { c, context in
            try c.prepare(input, layer: layer, dump: dump, context: context, threads: workspaces.count)
        }
        let perHead: [[HeadOutcome?]] = try Parallel.map(s.numKVHeads, threads: workspaces.count) { g, worker in
            let ws = workspaces[worker]
            let k = try input.keys(head: g, ws)
            let v = try input.values(head: g, ws)
            let queryHeads = g * group..<(g + 1) * group
            let reference = queries.reference(
                heads: queryHeads, keys: lookm_rows(k), values: lookm_rows(v), length: s.seqLen, headDim: D,
                scale: dump.attnScale, workspace: ws)
            return try compressors.indices.map { n -> HeadOutcome? in
                guard copied[n] == nil else { return nil }
                var head = try compressors[n].head(
                    g, keys: k, values: v, input: input, context: contexts[n], workspace: ws)
                // Measured as a cache would hold them: rounded to the dump's element type.
                try head.reloadAsStored(
                    nil, type: dump.elementType, headDim: D, source: dump.name, layer: i, head: g)
                let fidelity = queries.measure(
                    heads: queryHeads, reference: reference, headDim: D, scale: dump.attnScale,
                    compressed: head, modality: dump.tokens.modality, workspace: ws)
                return HeadOutcome(
                    fidelity: fidelity,
                    shift: Fidelity.shift(head: head, keys: lookm_rows(k), values: lookm_rows(v), D: D),
                    kept: head.position.count)
            }
        }
        return try compressors.indices.map { n in
            if let reason = copied[n] { return .copied(reason) }
            let kept = perHead[0][n]?.kept ?? 0
            accumulators[n].source = queries.source
            for g in perHead.indices {
                guard let outcome = perHead[g][n], outcome.kept == kept else {
                    throw LookMError(.other, "internal: kv heads of layer \(i) kept different counts")
                }
                for (j, f) in outcome.fidelity.enumerated() { accumulators[n].add(layer: i, head: g * group + j, f) }
                accumulators[n].addShift(layer: i, kvHead: g, outcome.shift)
            }
            return .compressed(kept: kept, heads: [])
        }
    }
}
