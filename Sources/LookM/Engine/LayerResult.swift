// What the engine makes of one layer: the types compress, sweep and report share.

/// One kv head of a compressed layer.
struct CompressedHead {
    var position: [Int32]
    var keys: [Float]
    var values: [Float]
    var merged: [Int32]
    var slotOf: [Int32]
    /// The keys and values as stored chunks, when a worker encoded them already (`keys` and
    /// `values` are then emptied: a layer's Float32 results need not wait for the writer).
    var encoded: (key: [ChunkEncoder.Chunk], value: [ChunkEncoder.Chunk])? = nil
    /// The keys and values quantised, when a worker did it already for a quantised cache (`keys`
    /// and `values` are then emptied too).
    var quantised: QuantisedHead? = nil
    var mergedCount: Int { merged.reduce(0) { $0 + Int($1) } }
    var droppedCount: Int { slotOf.lazy.filter { $0 < 0 }.count }
}

enum LayerResult {
    /// The layer stays as it is, for this reason.
    case copied(String)
    /// A sliding-window layer: kept as the model holds it, positions `start ..< seq_len`.
    case window(start: Int, size: Int)
    case compressed(kept: Int, heads: [CompressedHead])
}
