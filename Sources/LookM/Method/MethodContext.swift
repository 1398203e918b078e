/// Everything a selector or merge may depend on for one layer, as one value. The reference rules
/// that couple the two halves (sinks depend on the merge, avg uses weighted's filter) read the
/// paired method from here instead of leaking into the pipeline.
struct LayerContext: Sendable {
    let settings: CompressionSettings
    let layer: Int
    let length: Int
    let hh: Int
    let recent: Int
    let modality: [Modality]
    /// Query heads per kv head.
    let groupSize: Int

    init(settings: CompressionSettings, layer: Int, modality: [Modality], groupSize: Int) {
        self.settings = settings
        self.layer = layer
        self.length = modality.count
        (hh, recent) = settings.budget.split(length: modality.count)
        self.modality = modality
        self.groupSize = groupSize
    }

    var variant: Variant { settings.variant }
    var merge: String { settings.merge }
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
}

/// What a selector needs from the dump beyond keys and values.
enum DataNeed: Equatable {
    case none
    /// Accumulated attention: `attn_score`, or `query` to compute it.
    case scores
    /// The attention rows of the last `rows` queries: `window_attn`, or `query`.
    case windowRows(Int)
}

enum SelectorParameter: Hashable {
    case scores, window, kernel, sinks, seed
}
