import CKernels

/// What compression cost one query head, measured on the queries a dump offers (method-agnostic).
struct HeadFidelity: Sendable {
    /// Mean over the queries of |o_c - o_f| / |o_f|, where o = softmax(q K^T * scale) V over the full
    /// prompt (f) and over the kept slots (c, merged keys and values included). nil without queries.
    var outputError: Double?
    /// Mean cosine between o_c and o_f.
    var outputCosine: Double?
    /// Shares of the full attention mass on positions kept in their own slot, and merged into a pivot.
    var recallKept: Double
    var recallMerged: Double
    var recall: Double { recallKept + recallMerged }
    /// Recall within the attention mass on text and on non-text (image) positions; nil where the
    /// prompt has no such position.
    var recallText: Double? = nil
    var recallImage: Double? = nil
}

/// Where the attention that fidelity is measured with comes from.
public enum QuerySource: String, Codable, Sendable {
    /// `probe_query`: queries issued after the prefill (attend to every position).
    case probe
    /// The last prompt queries from `query` (causal).
    case prompt
    /// No queries: mass recall from the accumulated attention (`attn_score`) only.
    case scores
}

/// Attention-output error and mass recall of one compressed layer against the dump it came from.
enum Fidelity {
    /// Prompt queries used when a dump has `query` but no `probe_query`.
    static let promptQueries = 16

    /// A kv head's rows (as stored, widened to Double as the kernels read them) and their positions.
    struct Rows {
        let keys: lookm_rows
        let values: lookm_rows
        let positions: [Int64]
    }

    /// The dump's side of one query head's fidelity: attention weights (in `lookm_attention_f64`'s
    /// layout, over `rows` prompt positions) and outputs (`n x D`) of its queries over the full
    /// prompt. It does not depend on the compression, so a sweep computes it once per layer for
    /// every setting.
    struct Reference: Sendable {
        let weights: [Double]
        let output: [Double]
        let rows: Int
    }

    static func reference(
        queries: [Float], positions: [Int], full: Rows, headDim D: Int, scale: Double,
        workspace: Workspace
    ) -> Reference {
        let L = full.positions.count
        let n = positions.count
        let f = attention(
            queries, positions: positions, full, D: D, scale: scale, workspace: workspace,
            weights: .fullWeights, output: .fullOutput)
        return Reference(weights: Array(f.weights), output: Array(f.output[0..<(n * D)]), rows: L)
    }

    /// What happened to each prompt row in `head` (`LOOKM_ROW_*`), for `recall`: one kv head's
    /// compressed head serves all its query heads.
    static func rowClasses(head: CompressedHead, modality: [Modality]) -> [UInt8] {
        head.slotOf.indices.map { t in
            var c: UInt8 = 0
            let slot = Int(head.slotOf[t])
            if slot >= 0 { c |= UInt8(Int(head.position[slot]) == t ? LOOKM_ROW_KEPT : LOOKM_ROW_MERGED) }
            if t < modality.count { c |= UInt8(modality[t] == .text ? LOOKM_ROW_TEXT : LOOKM_ROW_IMAGE) }
            return c
        }
    }

    /// One query head's fidelity: its queries over the compressed head, against `reference`.
    /// `classes` are `rowClasses(head:modality:)`.
    static func measure(
        queries: [Float], positions: [Int], reference f: Reference, compressed: Rows, headDim D: Int, scale: Double,
        classes: [UInt8], workspace: Workspace
    ) -> HeadFidelity {
        let n = positions.count
        let c = attention(
            queries, positions: positions, compressed, D: D, scale: scale,
            workspace: workspace, weights: .keptWeights, output: .keptOutput)
        var err = 0.0
        var cos = 0.0
        for i in 0..<n {
            var diff = 0.0
            var normF = 0.0
            var normC = 0.0
            var dot = 0.0
            for d in 0..<D {
                let a = f.output[i * D + d]
                let b = c.output[i * D + d]
                diff += (b - a) * (b - a)
                normF += a * a
                normC += b * b
                dot += a * b
            }
            err += normF > 0 ? (diff / normF).squareRoot() : (diff > 0 ? 1 : 0)
            cos += normF > 0 && normC > 0 ? dot / (normF * normC).squareRoot() : (normF == normC ? 1 : 0)
        }
        var r = recall(f.weights, rows: f.rows, queries: n, classes: classes, workspace: workspace)
        r.outputError = err / Double(max(n, 1))
        r.outputCosine = cos / Double(max(n, 1))
        return r
    }

    /// Mass recall from a fixed distribution over positions (the accumulated attention).
    static func measure(scores: [Float], classes: [UInt8], workspace: Workspace) -> HeadFidelity {
        let total = scores.reduce(0.0) { $0 + Double($1) }
        // One query in lane 0 of the attention's weight layout.
        var weights = [Double](repeating: 0, count: scores.count * Int(LOOKM_ATTENTION_LANES))
        for (t, s) in scores.enumerated() {
            weights[t * Int(LOOKM_ATTENTION_LANES)] = total > 0 ? Double(s) / total : 0
        }
        return recall(weights, rows: scores.count, queries: 1, classes: classes, workspace: workspace)
    }

    /// Recall averaged over `n` queries' weights on `rows` positions (lookm_attention_f64's
    /// layout), over the positions both they and `classes` cover; the output metrics are left nil.
    private static func recall(
        _ weights: [Double], rows: Int, queries n: Int, classes: [UInt8], workspace: Workspace
    ) -> HeadFidelity {
        let k = Int(LOOKM_RECALL_SUMS)
        let sums = workspace.doubles(.recallSums, n * k)
        let covered = min(rows, classes.count)
        weights.withUnsafeBufferPointer { w in
            classes.withUnsafeBufferPointer { c in
                lookm_recall_sums(w.baseAddress, n, rows, covered, c.baseAddress, sums.baseAddress)
            }
        }
        var kept = 0.0
        var merged = 0.0
        var text = ModalityRecall()
        var image = ModalityRecall()
        for i in 0..<n {
            kept += sums[i * k]
            merged += sums[i * k + 1]
            text.add(mass: sums[i * k + 2], recalled: sums[i * k + 3])
            image.add(mass: sums[i * k + 4], recalled: sums[i * k + 5])
        }
        let m = Double(max(n, 1))
        return HeadFidelity(
            outputError: nil, outputCosine: nil, recallKept: kept / m, recallMerged: merged / m,
            recallText: text.mean, recallImage: image.mean)
    }

    /// Mean over queries of the recalled share of the attention mass on one modality class.
    struct ModalityRecall {
        private var sum = 0.0, count = 0

        mutating func add(mass: Double, recalled: Double) {
            if mass > 0 {
                sum += recalled / mass
                count += 1
            }
        }

        var mean: Double? { count > 0 ? sum / Double(count) : nil }
    }

    /// softmax(Q R^T * scale) V of `queries` (`n x D`) at `positions` over `rows` in Double
    /// (CKernels' `lookm_attention_f64`: the same bits on any CPU; against a float64 NumPy
    /// computation the metrics agree to 1e-9 relative, Tests/python/test_report.py). Row t is
    /// hidden from query i when its position exceeds `positions[i]` (causal prompt queries).
    private static func attention(
        _ queries: [Float], positions: [Int], _ rows: Rows, D: Int, scale: Double, workspace: Workspace,
        weights: Workspace.DoubleSlot, output: Workspace.DoubleSlot
    ) -> (weights: UnsafeMutableBufferPointer<Double>, output: UnsafeMutableBufferPointer<Double>) {
        let n = positions.count
        let R = rows.positions.count
        let lanes = Int(LOOKM_ATTENTION_LANES)
        let q = workspace.doubles(.queries, queries.count)
        for i in queries.indices { q[i] = Double(queries[i]) }
        let w = workspace.doubles(weights, (n + lanes - 1) / lanes * R * lanes)
        let out = workspace.doubles(output, n * D)
        let limit = positions.map(Int64.init)
        lookm_attention_f64(
            q.baseAddress, n, rows.keys, rows.values, R, D, scale, rows.positions, limit, w.baseAddress,
            out.baseAddress)
        return (w, out)
    }

    /// Relative L2 distance of each merged slot's key (and value) from its original row: how far
    /// merging moved it. Returns (sum, max, count) for keys and values.
    static func shift(head: CompressedHead, keys: lookm_rows, values: lookm_rows, D: Int)
        -> (key: (sum: Double, max: Double), value: (sum: Double, max: Double), count: Int)
    {
        let slots = head.position.indices.filter { head.merged[$0] > 0 }.map(Int64.init)
        let rows = slots.map { Int64(head.position[Int($0)]) }
        func shifts(_ y: [Float], _ x: lookm_rows) -> (sum: Double, max: Double) {
            var out = [Double](repeating: 0, count: slots.count)
            lookm_relative_shifts(y, slots, x, rows, slots.count, D, &out)
            return (out.reduce(0, +), out.reduce(0, max))
        }
        return (shifts(head.keys, keys), shifts(head.values, values), slots.count)
    }
}

extension lookm_rows {
    /// Float32 rows.
    init(_ floats: UnsafeBufferPointer<Float>) { self.init(data: floats.baseAddress, type: Int32(LOOKM_ROWS_F32)) }
}
