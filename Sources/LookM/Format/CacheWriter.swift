import CHDF5

/// Writes a `lookm-kv-cache` (docs/format.md) layer by layer into an `AtomicOutput`: the cache shows
/// up under its final name only after `finish()`; dropping the writer before that removes it.
final class CacheWriter {
    private var file: H5File?
    private let output: AtomicOutput
    let shape: ModelShape
    let elementType: ElementType
    let codec: Codec
    /// Whether layers may store kv heads with different slot counts (`ragged-heads`).
    let raggedHeads: Bool
    /// How keys and values are stored when quantised (`quantised-kv`); nil: in the element type.
    let quant: QuantScheme?
    private let sourceName: String

    /// - Parameter method: the canonical JSON of the settings (the `method` attribute).
    init(
        output: AtomicOutput, shape: ModelShape, model: String?, tokens: TokenTable, elementType: ElementType,
        codec: Codec, method: String, source: SourceInfo, nextPosition: Int? = nil, slidingWindows: Bool = false,
        raggedHeads: Bool = false, quant: QuantScheme? = nil
    ) throws {
        self.output = output
        self.raggedHeads = raggedHeads
        self.quant = quant
        sourceName = source.name
        self.shape = shape
        self.elementType = elementType
        self.codec = codec
        let file = try H5File.create(output.temporaryPath, displayName: output.finalPath)
        self.file = file
        let attrs = try file.rootAttributes()
        try attrs.set("format", string: Layout.cacheFormat)
        try FormatHeader.writing(
            (nextPosition == nil ? [] : [.nextPosition]) + (slidingWindows ? [.slidingWindow] : [])
                + (raggedHeads ? [.raggedHeads] : []) + (quant == nil ? [] : [.quantisedKV])
        ).write(attrs)
        if let quant {
            try attrs.set("quant", string: quant.name)
            try attrs.set("quant_group", int: quant.group)
            try attrs.set("quant_residual", int: quant.residual)
        }
        try shape.write(attrs)
        if let nextPosition { try attrs.set("next_position", int: nextPosition) }
        if let model { try attrs.set("model", string: model) }
        try attrs.set("method", string: method)
        try attrs.set("source", string: source.name)
        try attrs.set("source_size", int: source.size)
        try attrs.set("source_mtime", int: source.mtime)
        try attrs.set("lookm_version", string: lookmVersion)
        try tokens.write(file)
    }

    /// Creates layer `i`'s datasets for `kept` slots per kv head.
    func layer(_ i: Int, kept: Int, slidingWindow: Int? = nil) throws -> CacheLayerWriter {
        try layer(i, kept: Array(repeating: kept, count: shape.numKVHeads), slidingWindow: slidingWindow)
    }

    /// Creates layer `i`'s datasets for `kept[g]` slots in kv head `g`: the ragged layout when the
    /// counts differ (the writer must have been made with `raggedHeads`).
    func layer(_ i: Int, kept: [Int], slidingWindow: Int? = nil) throws -> CacheLayerWriter {
        guard let file else { preconditionFailure("CacheWriter used after finish()") }
        let ragged = Set(kept).count > 1
        guard !ragged || raggedHeads else {
            throw LookMError(
                .other, "internal: layer \(i)'s kv heads keep different counts in a cache without ragged-heads")
        }
        let writer = try CacheLayerWriter(
            file: file, layer: i, shape: shape, kept: kept, ragged: ragged, elementType: elementType, codec: codec,
            quant: quant, source: sourceName)
        if let slidingWindow { try file.groupAttributes(Layout.layer(i)).set("sliding_window", int: slidingWindow) }
        return writer
    }

    /// Flushes, closes, syncs and renames the cache into place.
    func finish() throws {
        guard file != nil else { return }
        try file?.flush()
        // Closes the file (every dataset handle is gone by now, and no local may hold it: the
        // bytes must be final before they are synced, renamed or copied through a device).
        file = nil
        try output.commit()
    }
}

/// The datasets of one cache layer, written one kv head at a time: one `[heads, kept, head_dim]`
/// tensor for the layer, or under `ragged-heads` one `[1, kept_g, head_dim]` tensor per kv head
/// (`/layers/i/heads/g/`), so a head stores exactly the slots it keeps; under `quantised-kv` the
/// codes, scales and residual slots of `QuantisedTensors` instead of each tensor.
final class CacheLayerWriter {
    /// Slots of each kv head.
    let kept: [Int]
    private enum Tensors {
        case plain(key: TensorWriter, value: TensorWriter)
        case quantised(QuantisedTensors.Writer)
    }
    /// Per kv head: where its keys and values, positions and merge counts go, and its row there.
    private let heads: [(tensors: Tensors, position: H5Dataset, merged: H5Dataset, row: Int)]
    private let slotOf: H5Dataset
    private let seqLen: Int
    private let headDim: Int
    private let elementType: ElementType
    let quant: QuantScheme?
    private let layer: Int
    private let source: String

    fileprivate init(
        file: H5File, layer i: Int, shape: ModelShape, kept: [Int], ragged: Bool, elementType: ElementType,
        codec: Codec, quant: QuantScheme?, source: String
    ) throws {
        self.kept = kept
        self.quant = quant
        self.elementType = elementType
        self.layer = i
        self.source = source
        seqLen = shape.seqLen
        headDim = shape.headDim
        func ints(_ path: String, _ shape: [Int]) throws -> H5Dataset {
            try H5Dataset.create(
                in: file, path: path, fileType: h5t_std_i32le(), shape: shape,
                chunk: TensorWriter.chunk(for: shape, elementSize: 4), codec: codec)
        }
        func tensors(_ dir: String, heads: Int, kept: Int) throws -> (Tensors, H5Dataset, H5Dataset) {
            let kv = [heads, kept, shape.headDim]
            let t: Tensors
            if let quant {
                t = .quantised(
                    try QuantisedTensors.Writer(
                        file: file, dir: dir, heads: heads, shape: quant.shape(kept: kept, headDim: shape.headDim),
                        type: elementType, codec: codec))
            } else {
                t = .plain(
                    key: try TensorWriter(file: file, path: "\(dir)/key", type: elementType, shape: kv, codec: codec),
                    value: try TensorWriter(
                        file: file, path: "\(dir)/value", type: elementType, shape: kv, codec: codec))
            }
            return (t, try ints("\(dir)/position", [heads, kept]), try ints("\(dir)/merged", [heads, kept]))
        }
        if ragged {
            heads = try kept.enumerated().map { g, k in
                let t = try tensors(Layout.head(i, g), heads: 1, kept: k)
                return (t.0, t.1, t.2, 0)
            }
        } else {
            let t = try tensors(Layout.layer(i), heads: shape.numKVHeads, kept: kept.first ?? 0)
            heads = (0..<shape.numKVHeads).map { g in (t.0, t.1, t.2, g) }
        }
        slotOf = try ints("\(Layout.layer(i))/slot_of", [shape.numKVHeads, shape.seqLen])
    }

    /// Encoders of kv head `g`'s key and value chunks, for workers (nil when HDF5 must run the codec
    /// itself, or the cache is quantised).
    func encoders(head g: Int) -> (key: ChunkEncoder, value: ChunkEncoder)? {
        guard case .plain(let key, let value) = heads[g].tensors else { return nil }
        let k = key.encoder
        let v = value.encoder
        return k.supported && kept[g] > 0 ? (k, v) : nil
    }

    /// Writes kv head `head` from chunks the workers encoded, and the slot bookkeeping.
    func write(
        head g: Int, encodedKey: [ChunkEncoder.Chunk], encodedValue: [ChunkEncoder.Chunk],
        position pos: [Int32], merged m: [Int32], slotOf s: [Int32]
    ) throws {
        guard case .plain(let key, let value) = heads[g].tensors else {
            preconditionFailure("encoded chunks for a quantised cache")
        }
        try key.writeEncoded(head: heads[g].row, encodedKey)
        try value.writeEncoded(head: heads[g].row, encodedValue)
        try writeSlots(head: g, pos, m, s)
    }

    /// Quantises kv head `g`'s `kept x head_dim` keys and values by the cache's scheme (safe on any
    /// thread: no HDF5 call). A group the element type cannot scale is an invalid input of the source.
    func quantise(head g: Int, key k: UnsafeBufferPointer<Float>, value v: UnsafeBufferPointer<Float>) throws
        -> QuantisedHead
    {
        guard let quant else { preconditionFailure("quantise on a cache that is not quantised") }
        do {
            return try quant.quantise(keys: k, values: v, kept: kept[g], headDim: headDim, type: elementType)
        } catch let e as QuantScheme.Overflow {
            throw e.error(source: source, layer: layer, head: g, type: elementType)
        }
    }

    /// Writes kv head `head`, quantised already, and the slot bookkeeping.
    func write(
        head g: Int, quantised q: QuantisedHead, position pos: [Int32], merged m: [Int32], slotOf s: [Int32]
    ) throws {
        guard case .quantised(let w) = heads[g].tensors else { preconditionFailure("quantised head for a plain cache") }
        try w.write(row: heads[g].row, q)
        try writeSlots(head: g, pos, m, s)
    }

    /// Writes kv head `head`: `kept x head_dim` keys and values (quantised here when the cache
    /// is), and the slot bookkeeping.
    func write(
        head g: Int, key k: UnsafeBufferPointer<Float>, value v: UnsafeBufferPointer<Float>,
        position pos: [Int32], merged m: [Int32], slotOf s: [Int32]
    ) throws {
        precondition(pos.count == kept[g] && m.count == kept[g] && s.count == seqLen, "slot table sizes")
        switch heads[g].tensors {
        case .plain(let key, let value):
            if kept[g] > 0 {
                try key.write(head: heads[g].row, k)
                try value.write(head: heads[g].row, v)
            }
            try writeSlots(head: g, pos, m, s)
        case .quantised:
            try write(head: g, quantised: try quantise(head: g, key: k, value: v), position: pos, merged: m, slotOf: s)
        }
    }

    private func writeSlots(head g: Int, _ pos: [Int32], _ m: [Int32], _ s: [Int32]) throws {
        precondition(pos.count == kept[g] && m.count == kept[g] && s.count == seqLen, "slot table sizes")
        let h = heads[g]
        for (d, row, values) in [(h.position, h.row, pos), (h.merged, h.row, m), (slotOf, g, s)] where !values.isEmpty {
            try values.withUnsafeBytes {
                try d.write(
                    start: [row, 0], count: [1, values.count], memoryType: h5t_native_int32(), from: $0.baseAddress!)
            }
        }
    }
}
