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

    /// Per query head of kv head `g`: `queries` are `n x D` rows with their positions (`Int.max`
    /// for probes, which see everything); `keys`/`values` the full prompt; the `slot` arrays the
    /// compressed head. `scoreShare` replaces queries with a fixed distribution (attn_score).
    /// A kv head's rows (float32, widened to Double as the kernels read them) and their positions.
    struct Rows {
        let keys: UnsafeBufferPointer<Float>
        let values: UnsafeBufferPointer<Float>
        let positions: [Int]
    }

    /// The dump's side of one query head's fidelity: attention weights (`n x L`) and outputs
    /// (`n x D`) of its queries over the full prompt. It does not depend on the compression, so a
    /// sweep computes it once per layer for every setting.
    struct Reference: Sendable {
        let weights: [Double]
        let output: [Double]
    }

    static func reference(
        queries: [Float], positions: [Int], full: Rows, headDim D: Int, scale: Double,
        workspace: Workspace
    ) -> Reference {
        let L = full.positions.count
        let n = positions.count
        let q = doubles(queries, workspace: workspace)
        let f = attention(
            q, n: n, full, limits: positions.map { min($0, L - 1) }, D: D, scale: scale,
            weights: workspace.doubles(.fullWeights, n * L), output: workspace.doubles(.fullOutput, n * D))
        return Reference(weights: Array(f.weights[0..<(n * L)]), output: Array(f.output[0..<(n * D)]))
    }

    /// One query head's fidelity: its queries over the compressed head, against `reference`.
    static func measure(
        queries: [Float], positions: [Int], reference f: Reference, compressed: Rows, headDim D: Int, scale: Double,
        head: CompressedHead, modality: [Modality], workspace: Workspace
    ) -> HeadFidelity {
        let n = positions.count
        let L = f.weights.count / max(n, 1)
        let q = doubles(queries, workspace: workspace)
        let c = attention(
            q, n: n, compressed, limits: positions.map { min($0, L - 1) }, D: D, scale: scale,
            weights: workspace.doubles(.keptWeights, n * compressed.positions.count),
            output: workspace.doubles(.keptOutput, n * D))
        var err = 0.0
        var cos = 0.0
        var kept = 0.0
        var merged = 0.0
        var text = ModalityRecall()
        var image = ModalityRecall()
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
            f.weights.withUnsafeBufferPointer { all in
                let weights = UnsafeBufferPointer(rebasing: all[(i * L)..<((i + 1) * L)])
                let share = massShares(weights, slotOf: head.slotOf, position: head.position)
                kept += share.kept
                merged += share.merged
                text.add(weights, head.slotOf, modality, text: true)
                image.add(weights, head.slotOf, modality, text: false)
            }
        }
        let m = Double(max(n, 1))
        return HeadFidelity(
            outputError: err / m, outputCosine: cos / m, recallKept: kept / m, recallMerged: merged / m,
            recallText: text.mean, recallImage: image.mean)
    }

    private static func doubles(_ values: [Float], workspace: Workspace) -> UnsafeBufferPointer<Double> {
        let q = workspace.doubles(.queries, values.count)
        for i in values.indices { q[i] = Double(values[i]) }
        return UnsafeBufferPointer(rebasing: q[0..<values.count])
    }

    /// Mean over queries of the recalled share of the attention mass on one modality class.
    struct ModalityRecall {
        private var sum = 0.0, count = 0

        mutating func add<W: Collection<Double>>(_ weights: W, _ slotOf: [Int32], _ modality: [Modality], text: Bool) {
            var mass = 0.0
            var recalled = 0.0
            for (t, w) in weights.enumerated() where t < modality.count && (modality[t] == .text) == text {
                mass += w
                if slotOf[t] >= 0 { recalled += w }
            }
            if mass > 0 {
                sum += recalled / mass
                count += 1
            }
        }

        var mean: Double? { count > 0 ? sum / Double(count) : nil }
    }

    /// Mass recall from a fixed distribution over positions (the accumulated attention).
    static func measure(scores: [Float], head: CompressedHead, modality: [Modality]) -> HeadFidelity {
        let total = scores.reduce(0.0) { $0 + Double($1) }
        let weights = scores.map { total > 0 ? Double($0) / total : 0 }
        let share = massShares(weights, slotOf: head.slotOf, position: head.position)
        var text = ModalityRecall()
        var image = ModalityRecall()
        text.add(weights, head.slotOf, modality, text: true)
        image.add(weights, head.slotOf, modality, text: false)
        return HeadFidelity(
            outputError: nil, outputCosine: nil, recallKept: share.kept, recallMerged: share.merged,
            recallText: text.mean, recallImage: image.mean)
    }

    /// Splits attention weights over positions into kept (own slot), merged (a pivot's slot), dropped.
    static func massShares<W: Collection<Double>>(_ weights: W, slotOf: [Int32], position: [Int32]) -> (
        kept: Double, merged: Double
    ) {
        var kept = 0.0
        var merged = 0.0
        for (t, w) in weights.enumerated() where t < slotOf.count {
            let slot = Int(slotOf[t])
            guard slot >= 0 else { continue }
            if Int(position[slot]) == t { kept += w } else { merged += w }
        }
        return (kept, merged)
    }

    /// softmax(Q R^T * scale) V for `n` queries at once, in Double (CKernels' `lookm_scores_f64`
    /// and `lookm_weighted_sum_f64`: every sum in order over its index, no fused multiply-add, so a
    /// cache keeping everything measures exactly 0, and any CPU gives the same bits; against a
    /// float64 NumPy computation the metrics agree to 1e-9 relative, Tests/python/test_report.py).
    /// Row t is hidden from query i when its position exceeds `limits[i]` (causal prompt queries).
    /// Weights `n x rows` and outputs `n x D` go to the given buffers.
    private static func attention(
        _ q: UnsafeBufferPointer<Double>, n: Int, _ rows: Rows, limits: [Int], D: Int, scale: Double,
        weights w: UnsafeMutableBufferPointer<Double>, output out: UnsafeMutableBufferPointer<Double>
    )
        -> (output: UnsafeMutableBufferPointer<Double>, weights: UnsafeMutableBufferPointer<Double>)
    {
        let R = rows.positions.count
        guard n > 0, R > 0 else {
            for i in 0..<(n * D) { out[i] = 0 }
            return (out, w)
        }
        lookm_scores_f64(q.baseAddress, n, rows.keys.baseAddress, R, D, scale, w.baseAddress)
        for i in 0..<n {
            var m = -Double.infinity
            for t in 0..<R where rows.positions[t] <= limits[i] { m = max(m, w[i * R + t]) }
            var total = 0.0
            for t in 0..<R {
                let e = rows.positions[t] <= limits[i] ? (w[i * R + t] - m).exp() : 0
                w[i * R + t] = e
                total += e
            }
            if total > 0 { for t in 0..<R { w[i * R + t] /= total } }
        }
        lookm_weighted_sum_f64(w.baseAddress, n, rows.values.baseAddress, R, D, out.baseAddress)
        return (out, w)
    }

    /// Relative L2 distance of each merged slot's key (and value) from its original row: how far
    /// merging moved it. Returns (sum, max, count) for keys and values.
    static func shift(
        head: CompressedHead, keys: UnsafeBufferPointer<Float>, values: UnsafeBufferPointer<Float>, D: Int
    )
        -> (key: (sum: Double, max: Double), value: (sum: Double, max: Double), count: Int)
    {
        var ks = 0.0
        var km = 0.0
        var vs = 0.0
        var vm = 0.0
        var n = 0
        for j in head.position.indices where head.merged[j] > 0 {
            let t = Int(head.position[j])
            func rel(_ a: [Float], _ b: UnsafeBufferPointer<Float>) -> Double {
                var diff = 0.0
                var norm = 0.0
                for d in 0..<D {
                    let x = Double(b[t * D + d])
                    let y = Double(a[j * D + d])
                    diff += (y - x) * (y - x)
                    norm += x * x
                }
                return norm > 0 ? (diff / norm).squareRoot() : diff.squareRoot()
            }
            let k = rel(head.keys, keys)
            let v = rel(head.values, values)
            ks += k
            km = max(km, k)
            vs += v
            vm = max(vm, v)
            n += 1
        }
        return ((ks, km), (vs, vm), n)
    }
}

extension Double {
    fileprivate func exp() -> Double {
        #if canImport(Glibc)
            return Glibc.exp(self)
        #else
            return Foundation.exp(self)
        #endif
    }
}

#if canImport(Glibc)
    import Glibc
#endif
