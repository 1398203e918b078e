/// Everything a selector or merge may depend on for one layer, as one value: the method, the
/// layer, and the budget as it falls on this layer's prompt.
struct LayerContext: Sendable {
    let method: Method
    let layer: Int
    let length: Int
    private(set) var hh: Int
    let recent: Int
    let modality: [Modality]
    /// Query heads per kv head.
    let groupSize: Int

    init(method: Method, layer: Int, layers: Int, modality: [Modality], groupSize: Int) {
        self.method = method
        self.layer = layer
        self.length = modality.count
        (hh, recent) = method.split(layer: layer, layers: layers, length: modality.count)
        self.modality = modality
        self.groupSize = groupSize
    }

    var variant: Variant { method.variant }

    /// This context with `hh` heavy hitters (one kv head's share under a head allocation).
    func withHeavyHitters(_ hh: Int) -> LayerContext {
        var c = self
        c.hh = hh
        return c
    }
    /// Positions outside the recent window, `0 ..< oldCount`.
    var oldCount: Int { max(0, length - recent) }
    var hasNonText: Bool { modality.contains { $0 != .text } }
}

/// One kv head's inputs to a selector.
struct HeadInput {
    let kvHead: Int
    let headDim: Int
    /// `length x headDim` keys, row-major.
    let keys: UnsafeBufferPointer<Float>
    /// Accumulated attention aggregated over the kv head's query heads (selectors using scores).
    let scores: [Float]?
    /// SnapKV: for each of the kv head's query heads, the column sums of its window rows.
    let windowSums: [[Double]]?
    /// `length x headDim` values, for selectors that read them (`Selector.readsValues`).
    var values: UnsafeBufferPointer<Float>? = nil
}

/// What a selector needs from the dump beyond keys and values.
enum DataNeed: Equatable {
    case none
    /// Accumulated attention: `attn_score`, or `query` to compute it.
    case scores
    /// The attention rows of the last `rows` queries: `window_attn`, or `query`.
    case windowRows(Int)
}
