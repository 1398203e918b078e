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
    static func measure(queries: [Float], positions: [Int], keys: UnsafeBufferPointer<Float>, values: UnsafeBufferPointer<Float>,
                        headDim D: Int, scale: Double, head: LayerCompressor.Head, modality: [Modality]) -> HeadFidelity {
        let L = keys.count / D, K = head.position.count
        var err = 0.0, cos = 0.0, kept = 0.0, merged = 0.0
        var text = ModalityRecall(), image = ModalityRecall()
        let n = positions.count
        for qi in 0..<n {
            let q = qi * D, limit = min(positions[qi], L - 1)
            let full = attention(queries, q, keys, values, rows: (0...limit).map { $0 }, D: D, scale: scale)
            let visible = (0..<K).filter { Int(head.position[$0]) <= limit }
            let compressed = head.keys.withUnsafeBufferPointer { kb in
                head.values.withUnsafeBufferPointer { vb in
                    attention(queries, q, kb, vb, rows: visible, D: D, scale: scale)
                }
            }
            var diff = 0.0, normF = 0.0, normC = 0.0, dot = 0.0
            for d in 0..<D {
                let f = full.output[d], c = compressed.output[d]
                diff += (c - f) * (c - f); normF += f * f; normC += c * c; dot += f * c
            }
            err += normF > 0 ? (diff / normF).squareRoot() : (diff > 0 ? 1 : 0)
            cos += normF > 0 && normC > 0 ? dot / (normF * normC).squareRoot() : (normF == normC ? 1 : 0)
            let share = massShares(full.weights, slotOf: head.slotOf, position: head.position)
            kept += share.kept
            merged += share.merged
            text.add(full.weights, head.slotOf, modality, text: true)
            image.add(full.weights, head.slotOf, modality, text: false)
        }
        let m = Double(max(n, 1))
        return HeadFidelity(outputError: err / m, outputCosine: cos / m, recallKept: kept / m, recallMerged: merged / m,
                            recallText: text.mean, recallImage: image.mean)
    }

    /// Mean over queries of the recalled share of the attention mass on one modality class.
    struct ModalityRecall {
        private var sum = 0.0, count = 0

        mutating func add(_ weights: [Double], _ slotOf: [Int32], _ modality: [Modality], text: Bool) {
            var mass = 0.0, recalled = 0.0
            for (t, w) in weights.enumerated() where t < modality.count && (modality[t] == .text) == text {
                mass += w
                if slotOf[t] >= 0 { recalled += w }
            }
            if mass > 0 { sum += recalled / mass; count += 1 }
        }

        var mean: Double? { count > 0 ? sum / Double(count) : nil }
    }

    /// Mass recall from a fixed distribution over positions (the accumulated attention).
    static func measure(scores: [Float], head: LayerCompressor.Head, modality: [Modality]) -> HeadFidelity {
        let total = scores.reduce(0.0) { $0 + Double($1) }
        let weights = scores.map { total > 0 ? Double($0) / total : 0 }
        let share = massShares(weights, slotOf: head.slotOf, position: head.position)
        var text = ModalityRecall(), image = ModalityRecall()
        text.add(weights, head.slotOf, modality, text: true)
        image.add(weights, head.slotOf, modality, text: false)
        return HeadFidelity(outputError: nil, outputCosine: nil, recallKept: share.kept, recallMerged: share.merged,
                            recallText: text.mean, recallImage: image.mean)
    }

    /// Splits attention weights over positions into kept (own slot), merged (a pivot's slot), dropped.
    static func massShares(_ weights: [Double], slotOf: [Int32], position: [Int32]) -> (kept: Double, merged: Double) {
        var kept = 0.0, merged = 0.0
        for (t, w) in weights.enumerated() where t < slotOf.count {
            let slot = Int(slotOf[t])
            guard slot >= 0 else { continue }
            if Int(position[slot]) == t { kept += w } else { merged += w }
        }
        return (kept, merged)
    }

    /// softmax(q . rows^T * scale) . values, in Double; also the weights (per position index given).
    private static func attention(_ queries: [Float], _ q: Int, _ keys: UnsafeBufferPointer<Float>, _ values: UnsafeBufferPointer<Float>,
                                  rows: [Int], D: Int, scale: Double) -> (output: [Double], weights: [Double]) {
        var logits = [Double](repeating: 0, count: rows.count)
        var m = -Double.infinity
        for (i, r) in rows.enumerated() {
            var s = 0.0
            for d in 0..<D { s += Double(queries[q + d]) * Double(keys[r * D + d]) }
            logits[i] = s * scale
            m = max(m, logits[i])
        }
        var total = 0.0
        for i in logits.indices { logits[i] = (logits[i] - m).exp(); total += logits[i] }
        var out = [Double](repeating: 0, count: D)
        for (i, r) in rows.enumerated() {
            let w = logits[i] / total
            logits[i] = w
            for d in 0..<D { out[d] += w * Double(values[r * D + d]) }
        }
        return (out, logits)
    }

    /// Relative L2 distance of each merged slot's key (and value) from its original row: how far
    /// merging moved it. Returns (sum, max, count) for keys and values.
    static func shift(head: LayerCompressor.Head, keys: UnsafeBufferPointer<Float>, values: UnsafeBufferPointer<Float>, D: Int)
        -> (key: (sum: Double, max: Double), value: (sum: Double, max: Double), count: Int) {
        var ks = 0.0, km = 0.0, vs = 0.0, vm = 0.0, n = 0
        for j in head.position.indices where head.merged[j] > 0 {
            let t = Int(head.position[j])
            func rel(_ a: [Float], _ b: UnsafeBufferPointer<Float>) -> Double {
                var diff = 0.0, norm = 0.0
                for d in 0..<D { let x = Double(b[t * D + d]), y = Double(a[j * D + d]); diff += (y - x) * (y - x); norm += x * x }
                return norm > 0 ? (diff / norm).squareRoot() : diff.squareRoot()
            }
            let k = rel(head.keys, keys), v = rel(head.values, values)
            ks += k; km = max(km, k); vs += v; vm = max(vm, v); n += 1
        }
        return ((ks, km), (vs, vm), n)
    }
}

private extension Double {
    func exp() -> Double {
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
