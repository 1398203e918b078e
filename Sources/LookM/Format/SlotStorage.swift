/// What kept slots cost in memory, as `report` counts K/V bytes: in the dump's element type, or
/// quantised (`--quant`). Every count of K/V bytes (compress's summary, report, sweep's `kv_bytes`,
/// `--target-bytes`) goes through this.
protocol SlotStorage: Sendable {
    /// Bytes of keys and values of one kv head keeping `kept` slots.
    func bytes(kept: Int, headDim: Int) -> Int
}

extension SlotStorage {
    /// Bytes of a layer whose kv heads keep `kept[g]` slots each.
    func bytes(kept: [Int], headDim: Int) -> Int { kept.reduce(0) { $0 + bytes(kept: $1, headDim: headDim) } }
    /// Bytes of `heads` kv heads keeping `kept` slots each.
    func bytes(heads: Int, kept: Int, headDim: Int) -> Int { heads * bytes(kept: kept, headDim: headDim) }
}

/// Keys and values in the dump's element type: 2 x head_dim elements per slot.
struct ElementStorage: SlotStorage {
    let type: ElementType
    func bytes(kept: Int, headDim: Int) -> Int { kept * 2 * headDim * type.byteSize }
}

/// Keys and values quantised: codes, scales, zero points and unquantised slots (`QuantShape`).
struct QuantStorage: SlotStorage {
    let scheme: QuantScheme
    let type: ElementType
    func bytes(kept: Int, headDim: Int) -> Int {
        scheme.shape(kept: kept, headDim: headDim).bytes(elementSize: type.byteSize)
    }
}

extension QuantScheme? {
    /// How slots in `type` cost under this scheme (or none).
    func storage(_ type: ElementType) -> any SlotStorage {
        if let q = self { return QuantStorage(scheme: q, type: type) }
        return ElementStorage(type: type)
    }
}
