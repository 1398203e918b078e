/// What kept slots cost in memory, as `report` counts K/V bytes. Today slots are stored in the
/// dump's element type; a quantised storage will be another conformance, and every count of K/V
/// bytes (compress's summary, report, sweep's `kv_bytes`, `--target-bytes`) goes through this.
protocol SlotStorage: Sendable {
    /// Bytes of keys and values for `slots` kept slots (summed over the layer's kv heads).
    func bytes(slots: Int, headDim: Int) -> Int
}

/// Keys and values in the dump's element type: 2 x head_dim elements per slot.
struct ElementStorage: SlotStorage {
    let type: ElementType
    func bytes(slots: Int, headDim: Int) -> Int { slots * 2 * headDim * type.byteSize }
}
