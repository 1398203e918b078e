/// Loads what a selector needs beyond keys and values (docs/method.md sections 1 and 3): accumulated
/// attention from `attn_score` or computed from `query`, and SnapKV's window sums from
/// `window_attn` or `query`. Missing data is an invalid input naming the layer, the dataset and
/// the methods that would work.
enum LayerAttention {
    static let attentionFree = "streaming, random, knorm, full"

    static func load(
        _ need: DataNeed, into input: LayerInput, from layer: DumpLayer, dump: DumpReader,
        selector: String, threads: Int
    ) throws {
        switch need {
        case .none:
            return
        case .scores where input.scores != nil:
            return  // loaded for an earlier setting of the same layer (sweep)
        case .windowRows(let rows) where input.windowSums != nil && input.windowSumRows == rows:
            return
        case .scores:
            if let scores = layer.attnScore {
                input.scores = try (0..<dump.shape.numHeads).map { try scores.read(head: $0) }
            } else if let query = layer.query {
                input.scores = try fromQueries(query, input, dump, threads: threads) { attention, q, k in
                    var s = [Float](repeating: 0, count: attention.length)
                    s.withUnsafeMutableBufferPointer { attention.run(query: q, key: k, scores: $0.baseAddress!) }
                    return s.map(Double.init)
                }.map { $0.map { Float($0) } }
            } else {
                throw dump.file.site.error(
                    Layout.layer(layer.index),
                    "\(selector) needs \(Layout.layer(layer.index, .attnScore)) or \(Layout.layer(layer.index, .query)), and this dump has neither (lookm-export writes attn_score always, and query with --query); methods that need no attention: \(attentionFree)"
                )
            }
        case .windowRows(let rows):
            input.windowSumRows = rows
            let L = dump.shape.seqLen
            if let w = layer.windowAttn, w.rows >= rows {
                // The last `rows` rows of each query head, summed per column in Double.
                input.windowSums = try (0..<dump.shape.numHeads).map { h in
                    var buf = [Float](repeating: 0, count: rows * L)
                    try buf.withUnsafeMutableBufferPointer {
                        try w.read(head: h, rows: (w.rows - rows)..<w.rows, into: $0)
                    }
                    return columnSums(buf, rows: rows, length: L)
                }
            } else if let query = layer.query {
                input.windowSums = try fromQueries(query, input, dump, threads: threads) { attention, q, k in
                    var buf = [Float](repeating: 0, count: rows * L)
                    buf.withUnsafeMutableBufferPointer {
                        attention.lastRows(query: q, key: k, rows: rows, into: $0.baseAddress!)
                    }
                    return columnSums(buf, rows: rows, length: L)
                }
            } else {
                let have =
                    layer.windowAttn.map { "\(Layout.layer(layer.index, .windowAttn)) has \($0.rows) rows" }
                    ?? "there is no \(Layout.layer(layer.index, .windowAttn))"
                throw dump.file.site.error(
                    Layout.layer(layer.index),
                    "\(selector) needs the attention rows of the last \(rows) queries: \(have) and there is no \(Layout.layer(layer.index, .query)); use a smaller --window, export with lookm-export --window \(rows) or --query, or use a method that needs no attention: \(attentionFree)"
                )
            }
        }
    }

    private static func columnSums(_ rows: [Float], rows n: Int, length L: Int) -> [Double] {
        var sums = [Double](repeating: 0, count: L)
        for r in 0..<n { for t in 0..<L { sums[t] += Double(rows[r * L + t]) } }
        return sums
    }

    /// Runs `body` for every query head in parallel with that head's queries and its kv head's keys.
    private static func fromQueries(
        _ query: TensorReader, _ input: LayerInput, _ dump: DumpReader, threads: Int,
        _ body: @escaping (CausalAttention, UnsafePointer<Float>, UnsafePointer<Float>) -> [Double]
    ) throws -> [[Double]] {
        let raw = try RawHeads(query)
        let H = dump.shape.numHeads
        let group = dump.shape.groupSize
        let attention = CausalAttention(
            length: dump.shape.seqLen, headDim: dump.shape.headDim, scale: Float(dump.attnScale))
        return try Parallel.map(H, threads: threads) { h, _ in
            let q = try input.floats(query, raw, head: h)
            let k = try input.floats(input.key, input.keyRaw, head: h / group)
            return q.withUnsafeBufferPointer { qb in
                k.withUnsafeBufferPointer { kb in body(attention, qb.baseAddress!, kb.baseAddress!) }
            }
        }
    }
}
