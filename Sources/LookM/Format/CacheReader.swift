import CHDF5

/// Opens a `lookm-kv-cache` and validates it: root attributes, token table, and for every layer the
/// shapes and the slot bookkeeping (positions ascending, `slot_of` consistent with `position`).
final class CacheReader {
    let file: H5File
    var name: String { file.site.file }
    let shape: ModelShape
    let model: String?
    /// The canonical settings JSON, exactly as stored.
    let method: String
    let source: SourceInfo
    let writerVersion: String
    let tokens: TokenTable
    let elementType: ElementType
    let header: FormatHeader
    /// The dump's `next_position`, copied by compress (nil: the next token is at `seq_len`).
    let nextPosition: Int?

    init(path: String, displayName: String? = nil) throws {
        file = try H5File.openForReading(path, displayName: displayName)
        let site = file.site
        let attrs = try file.rootAttributes()
        header = try requireFormat(attrs, Layout.cacheFormat)
        shape = try ModelShape.read(attrs)
        nextPosition = try readNextPosition(attrs, header)
        model = try attrs.string("model")
        func required<T>(_ name: String, _ read: (String) throws -> T?) throws -> T {
            guard let v = try read(name) else { throw site.error(nil, "missing root attribute \(name)") }
            return v
        }
        method = try required("method", attrs.string)
        source = SourceInfo(
            name: try required("source", attrs.string), size: try required("source_size", attrs.int),
            mtime: try required("source_mtime", attrs.int))
        guard case .object? = JSONValue.parse(method) else {
            throw site.error(nil, "attribute method is not a JSON object (docs/format.md: the canonical settings)")
        }
        guard source.size >= 0 else {
            throw site.error(nil, "attribute source_size = \(source.size), must not be negative")
        }
        writerVersion = try required("lookm_version", attrs.string)
        tokens = try TokenTable.read(file, seqLen: shape.seqLen)
        try shape.requireLayers(in: file)
        elementType = try CacheLayer(file: file, shape: shape, index: 0, header: header).key.type
    }

    func layer(_ i: Int) throws -> CacheLayer {
        let layer = try CacheLayer(file: file, shape: shape, index: i, header: header)
        guard layer.key.type == elementType else {
            throw file.site.error(
                Layout.layer(i, .key),
                "element type \(layer.key.type.rawValue) differs from layer 0's \(elementType.rawValue)")
        }
        return layer
    }
}

/// One cache layer: kept keys and values, and the slot tables.
final class CacheLayer {
    let index: Int
    let key: TensorReader
    let value: TensorReader
    let kept: Int
    private let position: H5Dataset
    private let merged: H5Dataset
    private let slotOf: H5Dataset
    private let site: H5Site
    private let seqLen: Int

    /// The model's sliding window of this layer, when the cache records one (`sliding-window`).
    let slidingWindow: Int?

    fileprivate init(file: H5File, shape s: ModelShape, index i: Int, header: FormatHeader) throws {
        index = i
        slidingWindow = try readSlidingWindow(file, layer: i, seqLen: s.seqLen, header: header)
        site = file.site
        seqLen = s.seqLen
        func dataset(_ name: String) throws -> H5Dataset {
            let path = "\(Layout.layer(i))/\(name)"
            guard file.isDataset(path) else { throw file.site.error(path, "missing (required in a cache)") }
            return try file.openDataset(path)
        }
        key = try TensorReader(try dataset("key"))
        value = try TensorReader(try dataset("value"))
        guard key.shape.count == 3, key.shape[0] == s.numKVHeads, key.shape[2] == s.headDim, key.shape[1] <= s.seqLen
        else {
            throw file.site.error(
                key.dataset.path, "shape \(key.shape), expected [\(s.numKVHeads), kept <= \(s.seqLen), \(s.headDim)]")
        }
        kept = key.shape[1]
        if let w = slidingWindow, kept > w - 1 {
            throw file.site.error(
                key.dataset.path, "\(kept) slots in a layer with sliding_window = \(w), which holds at most \(w - 1)")
        }
        guard value.shape == key.shape else {
            throw file.site.error(value.dataset.path, "shape \(value.shape) differs from the key's \(key.shape)")
        }
        guard value.type == key.type else {
            throw file.site.error(
                value.dataset.path, "element type \(value.type.rawValue) differs from the key's \(key.type.rawValue)")
        }
        position = try dataset("position")
        merged = try dataset("merged")
        slotOf = try dataset("slot_of")
        for (d, want) in [
            (position, [s.numKVHeads, kept]), (merged, [s.numKVHeads, kept]), (slotOf, [s.numKVHeads, s.seqLen]),
        ] {
            guard d.shape == want else { throw file.site.error(d.path, "shape \(d.shape), expected \(want)") }
            guard H5Tget_class(d.fileType.id) == H5T_INTEGER else {
                throw file.site.error(d.path, "is \(StoredElement.describe(d.fileType.id)), expected int32")
            }
            try d.requireFilters()
        }
    }

    /// Slot tables of kv head `head`.
    struct Slots {
        var position: [Int32]
        var merged: [Int32]
        var slotOf: [Int32]
    }

    /// Reads and checks kv head `head`'s slot tables.
    func slots(head: Int) throws -> Slots {
        func row(_ d: H5Dataset, _ n: Int) throws -> [Int32] {
            var out = [Int32](repeating: 0, count: n)
            if n > 0 {
                try out.withUnsafeMutableBytes {
                    try d.read(start: [head, 0], count: [1, n], memoryType: h5t_native_int32(), into: $0.baseAddress!)
                }
            }
            return out
        }
        let slots = Slots(
            position: try row(position, kept), merged: try row(merged, kept), slotOf: try row(slotOf, seqLen))
        for j in 0..<kept {
            let p = Int(slots.position[j])
            guard p >= 0, p < seqLen, j == 0 || slots.position[j - 1] < slots.position[j] else {
                throw site.error(
                    position.path, "head \(head), slot \(j): position \(p) is out of range or not ascending")
            }
            guard slots.slotOf[p] == Int32(j) else {
                throw site.error(
                    slotOf.path, "head \(head): position \(p) is kept in slot \(j) but slot_of says \(slots.slotOf[p])")
            }
            guard slots.merged[j] >= 0 else {
                throw site.error(merged.path, "head \(head), slot \(j): negative count \(slots.merged[j])")
            }
        }
        if let bad = slots.slotOf.firstIndex(where: { $0 < -1 || Int($0) >= kept }) {
            throw site.error(
                slotOf.path, "head \(head), position \(bad): slot \(slots.slotOf[bad]) is not in -1..<\(kept)")
        }
        // Every position other than a slot's own that maps to the slot was merged into it: the
        // counts must agree, so kept + merged + dropped accounts for every token exactly once.
        var held = [Int32](repeating: 0, count: kept)
        for s in slots.slotOf where s >= 0 { held[Int(s)] += 1 }
        if let j = (0..<kept).first(where: { slots.merged[$0] != held[$0] - 1 }) {
            throw site.error(
                merged.path,
                "head \(head), slot \(j): merged count \(slots.merged[j]), but slot_of maps \(held[j] - 1) other positions to it"
            )
        }
        return slots
    }
}
