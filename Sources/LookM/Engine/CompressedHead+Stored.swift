extension CompressedHead {
    /// Keys and values as a cache holds them and a model reads them back: rounded to the element
    /// type, and under `--quant` quantised and decoded (what report measures in a written cache).
    mutating func reloadAsStored(
        _ quant: QuantScheme?, type: ElementType, headDim: Int, source: String, layer: Int, head g: Int
    )
        throws
    {
        guard let quant else {
            ElementConversion.round(&keys, to: type)
            ElementConversion.round(&values, to: type)
            return
        }
        // Quantising rounds to the element type first itself.
        do {
            try quant.roundTrip(keys: &keys, values: &values, kept: position.count, headDim: headDim, type: type)
        } catch let e as QuantScheme.Overflow {
            throw e.error(source: source, layer: layer, head: g, type: type)
        }
    }

    /// Kv head `g` of a layer kept whole (a copied layer): every position in its own slot.
    static func whole(keys: UnsafeBufferPointer<Float>, values: UnsafeBufferPointer<Float>, length: Int)
        -> CompressedHead
    {
        CompressedHead(
            position: (0..<length).map { Int32($0) }, keys: Array(keys), values: Array(values),
            merged: [Int32](repeating: 0, count: length), slotOf: (0..<length).map { Int32($0) })
    }
}
