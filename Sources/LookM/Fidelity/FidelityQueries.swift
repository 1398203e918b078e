import CKernels

/// The queries fidelity is measured with, per query head: `probe_query` (decode-time queries, see
/// every prompt position), else the last prompt queries of `query` (causal), else none (mass
/// recall then comes from `attn_score`).
struct FidelityQueries {
    let source: QuerySource
    /// Per query head: `count x headDim` rows.
    let rows: [[Float]]
    /// Position of each row (`Int.max` for probes).
    let positions: [Int]
    /// Per query head, when `source == .scores`.
    let scores: [[Float]]

    static func load(_ layer: DumpLayer, _ dump: DumpReader) throws -> FidelityQueries {
        let H = dump.shape.numHeads
        let L = dump.shape.seqLen
        if let probes = layer.probeQuery {
            return FidelityQueries(
                source: .probe, rows: try (0..<H).map { try probes.read(head: $0) },
                positions: [Int](repeating: Int.max, count: probes.rows), scores: [])
        }
        if let query = layer.query {
            let n = min(Fidelity.promptQueries, L)
            let rows = try (0..<H).map { h -> [Float] in
                var out = [Float](repeating: 0, count: n * dump.shape.headDim)
                try out.withUnsafeMutableBufferPointer { try query.read(head: h, rows: (L - n)..<L, into: $0) }
                return out
            }
            return FidelityQueries(source: .prompt, rows: rows, positions: Array((L - n)..<L), scores: [])
        }
        if let scores = layer.attnScore {
            return FidelityQueries(
                source: .scores, rows: [], positions: [], scores: try (0..<H).map { try scores.read(head: $0) })
        }
        throw missing(layer, dump)
    }

    /// Which queries `load` takes for `layer` (same order), without reading them: layers measured
    /// exact need only this.
    static func source(of layer: DumpLayer, _ dump: DumpReader) throws -> QuerySource {
        if layer.probeQuery != nil { return .probe }
        if layer.query != nil { return .prompt }
        if layer.attnScore != nil { return .scores }
        throw missing(layer, dump)
    }

    private static func missing(_ layer: DumpLayer, _ dump: DumpReader) -> LookMError {
        dump.file.site.error(
            Layout.layer(layer.index),
            "has neither probe_query, query nor attn_score: fidelity cannot be measured; report without --reference for the memory part"
        )
    }

    /// The full-prompt attention of every query head of kv head `g` (`heads`) over its `length`
    /// rows; nil when fidelity comes from `attn_score`.
    func reference(
        heads: Range<Int>, keys: lookm_rows, values: lookm_rows, length: Int, headDim D: Int, scale: Double,
        workspace: Workspace
    ) -> [Fidelity.Reference]? {
        guard source != .scores else { return nil }
        let full = Fidelity.Rows(keys: keys, values: values, positions: Array(0..<Int64(length)))
        return heads.map {
            Fidelity.reference(
                queries: rows[$0], positions: positions, full: full, headDim: D, scale: scale, workspace: workspace)
        }
    }

    /// Fidelity of every query head of kv head `g` (`heads`, with their `reference`) for one
    /// compressed head.
    func measure(
        heads: Range<Int>, reference: [Fidelity.Reference]?, headDim D: Int, scale: Double,
        compressed: CompressedHead, modality: [Modality], workspace: Workspace
    ) -> [HeadFidelity] {
        let classes = Fidelity.rowClasses(head: compressed, modality: modality)
        guard let reference else {
            return heads.map { Fidelity.measure(scores: scores[$0], classes: classes, workspace: workspace) }
        }
        let positions = compressed.position.map(Int64.init)
        return compressed.keys.withUnsafeBufferPointer { kb in
            compressed.values.withUnsafeBufferPointer { vb in
                let small = Fidelity.Rows(keys: lookm_rows(kb), values: lookm_rows(vb), positions: positions)
                return zip(heads, reference).map { h, r in
                    Fidelity.measure(
                        queries: rows[h], positions: self.positions, reference: r, compressed: small, headDim: D,
                        scale: scale, classes: classes, workspace: workspace)
                }
            }
        }
    }
}
