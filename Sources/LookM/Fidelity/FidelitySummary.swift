/// A statistic over (layer, head) cells: its mean, its worst value and where that is.
public struct Statistic: Codable, Sendable, Equatable {
    public var mean: Double
    public var worst: Double
    public var worstLayer: Int
    public var worstHead: Int
    enum CodingKeys: String, CodingKey {
        case mean, worst
        case worstLayer = "worst_layer"
        case worstHead = "worst_head"
    }
}

/// Fidelity of one (layer, query head) cell, or a layer's mean over its heads. Derived fields are
/// stored (set once in `init`) so that the synthesized Codable writes them.
public struct FidelityRow: Codable, Sendable {
    public let layer: Int
    /// Query head; nil in per-layer rows.
    public let head: Int?
    public let outputError: Double?
    public let outputCosine: Double?
    public let recallKept: Double
    public let recallMerged: Double
    public let recall: Double
    /// Recall within the text and within the non-text attention mass.
    public let recallText: Double?
    public let recallImage: Double?
    enum CodingKeys: String, CodingKey {
        case layer, head, recall
        case outputError = "output_error"
        case outputCosine = "output_cosine"
        case recallKept = "recall_kept"
        case recallMerged = "recall_merged"
        case recallText = "recall_text"
        case recallImage = "recall_image"
    }
    public init(
        layer: Int, head: Int?, outputError: Double?, outputCosine: Double?, recallKept: Double, recallMerged: Double,
        recallText: Double? = nil, recallImage: Double? = nil
    ) {
        self.layer = layer
        self.head = head
        self.outputError = outputError
        self.outputCosine = outputCosine
        self.recallKept = recallKept
        self.recallMerged = recallMerged
        self.recall = recallKept + recallMerged
        self.recallText = recallText
        self.recallImage = recallImage
    }
}

/// Fidelity over a whole cache.
public struct FidelitySummary: Codable, Sendable {
    public var querySource: QuerySource
    public var outputError: Statistic?
    public var outputCosine: Statistic?
    public var recall: Statistic
    public var recallKept: Double
    public var recallMerged: Double
    /// Mean recall within the text and within the non-text attention mass.
    public var recallText: Double?
    public var recallImage: Double?
    /// Relative L2 shift of merged slots' keys and values from their original rows.
    public var keyShift: Statistic?
    public var valueShift: Statistic?
    public var layers: [FidelityRow]
    public var heads: [FidelityRow]
    enum CodingKeys: String, CodingKey {
        case recall, layers, heads
        case querySource = "query_source"
        case outputError = "output_error"
        case outputCosine = "output_cosine"
        case recallKept = "recall_kept"
        case recallMerged = "recall_merged"
        case keyShift = "key_shift"
        case valueShift = "value_shift"
        case recallText = "recall_text"
        case recallImage = "recall_image"
    }
}

/// Collects per-cell fidelity while layers stream by, and summarises at the end.
struct FidelityAccumulator {
    var source: QuerySource = .scores
    private(set) var heads: [FidelityRow] = []
    private var keyShifts: [(layer: Int, head: Int, sum: Double, max: Double, count: Int)] = []
    private var valueShifts: [(layer: Int, head: Int, sum: Double, max: Double, count: Int)] = []

    mutating func add(layer: Int, head: Int, _ f: HeadFidelity) {
        heads.append(
            FidelityRow(
                layer: layer, head: head, outputError: f.outputError, outputCosine: f.outputCosine,
                recallKept: f.recallKept, recallMerged: f.recallMerged, recallText: f.recallText,
                recallImage: f.recallImage))
    }

    /// Every query head of a layer the cache holds exactly as the reference does (copied, or a
    /// sliding window kept as the model keeps it): no error, all attention mass kept.
    mutating func addExact(layer: Int, heads: Int, source: QuerySource, modality: [Modality]) {
        let text = modality.contains(.text)
        let image = modality.contains { $0 != .text }
        for h in 0..<heads {
            add(
                layer: layer, head: h,
                HeadFidelity(
                    outputError: source == .scores ? nil : 0, outputCosine: source == .scores ? nil : 1,
                    recallKept: 1, recallMerged: 0, recallText: text ? 1 : nil, recallImage: image ? 1 : nil))
        }
        self.source = source
    }

    mutating func addShift(
        layer: Int, kvHead: Int, _ s: (key: (sum: Double, max: Double), value: (sum: Double, max: Double), count: Int)
    ) {
        guard s.count > 0 else { return }
        keyShifts.append((layer, kvHead, s.key.sum, s.key.max, s.count))
        valueShifts.append((layer, kvHead, s.value.sum, s.value.max, s.count))
    }

    static func mean(_ v: [Double]) -> Double? { v.isEmpty ? nil : v.reduce(0, +) / Double(v.count) }

    func summary() -> FidelitySummary {
        func stat(_ values: [(Double, Int, Int)], worstIsMax: Bool) -> Statistic? {
            guard !values.isEmpty else { return nil }
            let mean = values.reduce(0) { $0 + $1.0 } / Double(values.count)
            // The first worst cell in (layer, head) order, so ties report deterministically.
            let worst = values.dropFirst().reduce(values[0]) { best, x in
                (worstIsMax ? x.0 > best.0 : x.0 < best.0) ? x : best
            }
            return Statistic(mean: mean, worst: worst.0, worstLayer: worst.1, worstHead: worst.2)
        }
        let err = heads.compactMap { r in r.outputError.map { ($0, r.layer, r.head ?? 0) } }
        let cos = heads.compactMap { r in r.outputCosine.map { ($0, r.layer, r.head ?? 0) } }
        let rec = heads.map { ($0.recall, $0.layer, $0.head ?? 0) }
        func shiftStat(_ s: [(layer: Int, head: Int, sum: Double, max: Double, count: Int)]) -> Statistic? {
            guard !s.isEmpty else { return nil }
            let n = s.reduce(0) { $0 + $1.count }
            let worst = s.max { $0.max < $1.max }!
            return Statistic(
                mean: s.reduce(0) { $0 + $1.sum } / Double(n), worst: worst.max, worstLayer: worst.layer,
                worstHead: worst.head)
        }
        var layers: [FidelityRow] = []
        for layer in Set(heads.map(\.layer)).sorted() {
            let rows = heads.filter { $0.layer == layer }
            let n = Double(rows.count)
            func mean(_ k: KeyPath<FidelityRow, Double?>) -> Double? {
                let v = rows.compactMap { $0[keyPath: k] }
                return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
            }
            layers.append(
                FidelityRow(
                    layer: layer, head: nil, outputError: mean(\.outputError), outputCosine: mean(\.outputCosine),
                    recallKept: rows.reduce(0) { $0 + $1.recallKept } / n,
                    recallMerged: rows.reduce(0) { $0 + $1.recallMerged } / n,
                    recallText: mean(\.recallText), recallImage: mean(\.recallImage)))
        }
        let n = Double(max(heads.count, 1))
        return FidelitySummary(
            querySource: source, outputError: stat(err, worstIsMax: true), outputCosine: stat(cos, worstIsMax: false),
            recall: stat(rec, worstIsMax: false) ?? Statistic(mean: 0, worst: 0, worstLayer: 0, worstHead: 0),
            recallKept: heads.reduce(0) { $0 + $1.recallKept } / n,
            recallMerged: heads.reduce(0) { $0 + $1.recallMerged } / n,
            recallText: Self.mean(heads.compactMap(\.recallText)),
            recallImage: Self.mean(heads.compactMap(\.recallImage)),
            keyShift: shiftStat(keyShifts), valueShift: shiftStat(valueShifts), layers: layers, heads: heads)
    }
}
