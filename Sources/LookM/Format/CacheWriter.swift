import CHDF5

/// Writes a `lookm-kv-cache` (docs/format.md) layer by layer into an `AtomicOutput`: the cache shows
/// up under its final name only after `finish()`; dropping the writer before that removes it.
final class CacheWriter {
    private var file: H5File?
    private let output: AtomicOutput
    let shape: ModelShape
    let elementType: ElementType
    let codec: Codec

    /// - Parameter method: the canonical JSON of the settings (the `method` attribute).
    init(
        output: AtomicOutput, shape: ModelShape, model: String?, tokens: TokenTable, elementType: ElementType,
        codec: Codec, method: String, source: SourceInfo, nextPosition: Int? = nil, slidingWindows: Bool = false
    ) throws {
        self.output = output
        self.shape = shape
        self.elementType = elementType
        self.codec = codec
        let file = try H5File.create(output.temporaryPath, displayName: output.finalPath)
        self.file = file
        let attrs = try file.rootAttributes()
        try attrs.set("format", string: Layout.cacheFormat)
        try FormatHeader.writing(
            (nextPosition == nil ? [] : [.nextPosition]) + (slidingWindows ? [.slidingWindow] : [])
        ).write(attrs)
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
        guard let file else { preconditionFailure("CacheWriter used after finish()") }
        let writer = try CacheLayerWriter(
            file: file, layer: i, shape: shape, kept: kept, elementType: elementType, codec: codec)
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

/// The datasets of one cache layer, written one kv head at a time.
final class CacheLayerWriter {
    let kept: Int
    private let key: TensorWriter
    private let value: TensorWriter
    private let position: H5Dataset
    private let merged: H5Dataset
    private let slotOf: H5Dataset
    private let seqLen: Int

    fileprivate init(file: H5File, layer i: Int, shape: ModelShape, kept: Int, elementType: ElementType, codec: Codec)
        throws
    {
        self.kept = kept
        seqLen = shape.seqLen
        let kv = [shape.numKVHeads, kept, shape.headDim]
        key = try TensorWriter(file: file, path: Layout.layer(i, .key), type: elementType, shape: kv, codec: codec)
        value = try TensorWriter(file: file, path: Layout.layer(i, .value), type: elementType, shape: kv, codec: codec)
        func ints(_ name: String, _ length: Int) throws -> H5Dataset {
            let shape = [shape.numKVHeads, length]
            return try H5Dataset.create(
                in: file, path: "\(Layout.layer(i))/\(name)", fileType: h5t_std_i32le(), shape: shape,
                chunk: TensorWriter.chunk(for: shape, elementSize: 4), codec: codec)
        }
        position = try ints("position", kept)
        merged = try ints("merged", kept)
        slotOf = try ints("slot_of", shape.seqLen)
    }

    /// Encoders of the key and value chunks, for workers (nil when HDF5 must run the codec itself).
    var encoders: (key: ChunkEncoder, value: ChunkEncoder)? {
        let k = key.encoder
        let v = value.encoder
        return k.supported && kept > 0 ? (k, v) : nil
    }

    /// Writes kv head `head` from chunks the workers encoded, and the slot bookkeeping.
    func write(
        head: Int, encodedKey: [ChunkEncoder.Chunk], encodedValue: [ChunkEncoder.Chunk],
        position pos: [Int32], merged m: [Int32], slotOf s: [Int32]
    ) throws {
        try key.writeEncoded(head: head, encodedKey)
        try value.writeEncoded(head: head, encodedValue)
        try writeSlots(head: head, pos, m, s)
    }

    /// Writes kv head `head`: `kept x head_dim` keys and values, and the slot bookkeeping.
    func write(
        head: Int, key k: UnsafeBufferPointer<Float>, value v: UnsafeBufferPointer<Float>,
        position pos: [Int32], merged m: [Int32], slotOf s: [Int32]
    ) throws {
        precondition(pos.count == kept && m.count == kept && s.count == seqLen, "slot table sizes")
        try key.write(head: head, k)
        try value.write(head: head, v)
        try writeSlots(head: head, pos, m, s)
    }

    private func writeSlots(head: Int, _ pos: [Int32], _ m: [Int32], _ s: [Int32]) throws {
        precondition(pos.count == kept && m.count == kept && s.count == seqLen, "slot table sizes")
        for (d, values) in [(position, pos), (merged, m), (slotOf, s)] where !values.isEmpty {
            try values.withUnsafeBytes {
                try d.write(
                    start: [head, 0], count: [1, values.count], memoryType: h5t_native_int32(), from: $0.baseAddress!)
            }
        }
    }
}
