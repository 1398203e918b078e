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
    /// How keys and values are stored, when quantised (`quantised-kv`).
    let quant: QuantScheme?

    init(path: String, displayName: String? = nil) throws {
        file = try H5File.openForReading(path, displayName: displayName)
        let site = file.site
        let attrs = try file.rootAttributes()
        header = try requireFormat(attrs, Layout.cacheFormat)
        shape = try ModelShape.read(attrs)
        nextPosition = try readNextPosition(attrs, header)
        quant = try readQuant(attrs, header, shape)
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
        elementType = try CacheLayer(file: file, shape: shape, index: 0, header: header, quant: quant).elementType
    }

    func layer(_ i: Int) throws -> CacheLayer {
        let layer = try CacheLayer(file: file, shape: shape, index: i, header: header, quant: quant)
        guard layer.elementType == elementType else {
            throw file.site.error(
                Layout.layer(i),
                "element type \(layer.elementType.rawValue) differs from layer 0's \(elementType.rawValue)")
        }
        return layer
    }
}

/// One cache layer: kept keys and values, and the slot tables. Either one `[heads, kept, head_dim]`
/// tensor for the layer, or under `ragged-heads` a `/layers/i/heads/g/` group per kv head, and
/// under `quantised-kv` codes and scales in place of each tensor (docs/format.md); `kept`,
/// `keys(head:)` (dequantised) and `slots(head:)` read any of them.
final class CacheLayer {
    let index: Int
    /// Slots of each kv head.
    let kept: [Int]
    /// Whether the kv heads are stored one by one (`/layers/i/heads/g/`).
    let ragged: Bool
    private enum Tensors {
        case plain(key: TensorReader, value: TensorReader)
        case quantised(QuantisedTensors.Reader)
    }
    /// Per kv head: its keys and values, position and merge counts, and its row in them.
    private let heads: [(tensors: Tensors, position: H5Dataset, merged: H5Dataset, row: Int)]
    let quant: QuantScheme?
    private let headDim: Int
    private let slotOf: H5Dataset
    private let site: H5Site
    private let seqLen: Int

    /// The model's sliding window of this layer, when the cache records one (`sliding-window`).
    let slidingWindow: Int?

    fileprivate init(file: H5File, shape s: ModelShape, index i: Int, header: FormatHeader, quant: QuantScheme?) throws
    {
        index = i
        self.quant = quant
        headDim = s.headDim
        let window = try readSlidingWindow(file, layer: i, seqLen: s.seqLen, header: header)
        slidingWindow = window
        site = file.site
        seqLen = s.seqLen
        func dataset(_ path: String) throws -> H5Dataset {
            guard file.isDataset(path) else { throw file.site.error(path, "missing (required in a cache)") }
            return try file.openDataset(path)
        }
        /// Keys, values, positions and merge counts of `count` heads under `dir`.
        func tensors(_ dir: String, count: Int) throws -> (Tensors, H5Dataset, H5Dataset, Int) {
            let position = try dataset("\(dir)/position")
            guard position.shape.count == 2, position.shape[0] == count, position.shape[1] <= s.seqLen else {
                throw file.site.error(
                    position.path, "shape \(position.shape), expected [\(count), kept <= \(s.seqLen)]")
            }
            let kept = position.shape[1]
            if let w = window, kept > w - 1 {
                throw file.site.error(
                    position.path, "\(kept) slots in a layer with sliding_window = \(w), which holds at most \(w - 1)")
            }
            let merged = try dataset("\(dir)/merged")
            for d in [position, merged] { try Self.requireInts(d, [count, kept], file) }
            if let quant {
                if let plain = ["key", "value"].first(where: { file.isDataset("\(dir)/\($0)") }) {
                    throw file.site.error(
                        "\(dir)/\(plain)",
                        "present in a quantised cache, which stores codes (docs/format.md quantised-kv)")
                }
                let q = try QuantisedTensors.Reader(
                    file: file, dir: dir, heads: count, shape: quant.shape(kept: kept, headDim: s.headDim))
                return (.quantised(q), position, merged, kept)
            }
            let key = try TensorReader(try dataset("\(dir)/key"))
            let value = try TensorReader(try dataset("\(dir)/value"))
            guard key.shape == [count, kept, s.headDim] else {
                throw file.site.error(
                    key.dataset.path, "shape \(key.shape), expected [\(count), \(kept), \(s.headDim)]")
            }
            guard value.shape == key.shape else {
                throw file.site.error(value.dataset.path, "shape \(value.shape) differs from the key's \(key.shape)")
            }
            guard value.type == key.type else {
                throw file.site.error(
                    value.dataset.path,
                    "element type \(value.type.rawValue) differs from the key's \(key.type.rawValue)")
            }
            return (.plain(key: key, value: value), position, merged, kept)
        }
        let headsGroup = "\(Layout.layer(i))/heads"
        ragged = file.isGroup(headsGroup)
        if ragged {
            guard header.has(.raggedHeads) else {
                throw file.site.error(
                    headsGroup, "per-head layout without the ragged-heads extension (docs/format.md)")
            }
            let flat = "\(Layout.layer(i))/position"
            guard !file.isDataset(flat) else {
                throw file.site.error(flat, "present beside \(headsGroup): a layer has one layout")
            }
            let each = try (0..<s.numKVHeads).map { g in try tensors(Layout.head(i, g), count: 1) }
            heads = each.map { ($0.0, $0.1, $0.2, 0) }
            kept = each.map(\.3)
            guard each.allSatisfy({ Self.type($0.0) == Self.type(each[0].0) }) else {
                throw file.site.error(headsGroup, "kv heads stored with different element types")
            }
        } else {
            let t = try tensors(Layout.layer(i), count: s.numKVHeads)
            heads = (0..<s.numKVHeads).map { g in (t.0, t.1, t.2, g) }
            kept = Array(repeating: t.3, count: s.numKVHeads)
        }
        slotOf = try dataset("\(Layout.layer(i))/slot_of")
        try Self.requireInts(slotOf, [s.numKVHeads, s.seqLen], file)
    }

    private static func requireInts(_ d: H5Dataset, _ want: [Int], _ file: H5File) throws {
        guard d.shape == want else { throw file.site.error(d.path, "shape \(d.shape), expected \(want)") }
        guard H5Tget_class(d.fileType.id) == H5T_INTEGER else {
            throw file.site.error(d.path, "is \(StoredElement.describe(d.fileType.id)), expected int32")
        }
        try d.requireFilters()
    }

    private static func type(_ t: Tensors) -> ElementType {
        switch t {
        case .plain(let key, _): return key.type
        case .quantised(let q): return q.elementType
        }
    }

    var elementType: ElementType { Self.type(heads[0].tensors) }

    /// Slots of the layer, summed over its kv heads.
    var slots: Int { kept.reduce(0, +) }

    /// Every dataset holding the layer's keys and values, once each.
    var tensors: [H5Dataset] {
        let each = ragged ? heads.map(\.tensors) : [heads[0].tensors]
        return each.flatMap { t -> [H5Dataset] in
            switch t {
            case .plain(let key, let value): return [key.dataset, value.dataset]
            case .quantised(let q): return q.datasets
            }
        }
    }

    /// How keys and values cost in memory: the element type, or the quantised form.
    var storage: any SlotStorage {
        quant.map { QuantStorage(scheme: $0, type: elementType) } ?? ElementStorage(type: elementType)
            as any SlotStorage
    }

    /// Bytes of keys plus values in memory (as stored before the codec), and in the file (after it).
    var kvBytes: Int { kept.reduce(0) { $0 + storage.bytes(kept: $1, headDim: headDim) } }
    var kvStoredBytes: Int { tensors.reduce(0) { $0 + $1.storageBytes } }
    var storageDescription: String { tensors[0].storageDescription }

    /// Kv head `g`'s kept keys (`kept[g] x head_dim`, Float32; dequantised from a quantised cache),
    /// or values.
    func keys(head g: Int) throws -> [Float] { try read(g).keys }
    func values(head g: Int) throws -> [Float] { try read(g).values }

    /// Kv head `g` as stored, when the cache is quantised.
    func quantised(head g: Int) throws -> QuantisedHead? {
        guard case .quantised(let q) = heads[g].tensors, kept[g] > 0 else { return nil }
        return try q.read(row: heads[g].row)
    }

    /// Both at once (one decoding of a quantised head).
    func read(_ g: Int) throws -> (keys: [Float], values: [Float]) {
        guard kept[g] > 0 else { return ([], []) }
        switch heads[g].tensors {
        case .plain(let key, let value):
            return (try key.read(head: heads[g].row), try value.read(head: heads[g].row))
        case .quantised(let q):
            guard let quant else { preconditionFailure("quantised tensors without a scheme") }
            let (k, v) = quant.dequantise(
                try q.read(row: heads[g].row), kept: kept[g], headDim: headDim, type: elementType)
            for (x, name) in [(k, "key"), (v, "value")] {
                if let bad = x.firstIndex(where: { !$0.isFinite }) {
                    throw site.error(
                        "\(Layout.layer(index))",
                        "kv head \(g): the \(name) at slot \(bad / headDim), channel \(bad % headDim) decodes to \(x[bad])"
                    )
                }
            }
            return (k, v)
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
        func row(_ d: H5Dataset, _ r: Int, _ n: Int) throws -> [Int32] {
            var out = [Int32](repeating: 0, count: n)
            if n > 0 {
                try out.withUnsafeMutableBytes {
                    try d.read(start: [r, 0], count: [1, n], memoryType: h5t_native_int32(), into: $0.baseAddress!)
                }
            }
            return out
        }
        let h = heads[head]
        let kept = self.kept[head]
        let position = h.position
        let merged = h.merged
        let slots = Slots(
            position: try row(position, h.row, kept), merged: try row(merged, h.row, kept),
            slotOf: try row(slotOf, head, seqLen))
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

/// The `quantised-kv` root attributes, checked like the flags that wrote them.
private func readQuant(_ attrs: H5Attributes, _ header: FormatHeader, _ shape: ModelShape) throws -> QuantScheme? {
    guard header.has(.quantisedKV) else {
        if try attrs.string("quant") != nil {
            throw attrs.site.error(nil, "attribute quant without the quantised-kv extension (docs/format.md)")
        }
        return nil
    }
    guard let name = try attrs.string("quant"), let group = try attrs.int("quant_group"),
        let residual = try attrs.int("quant_residual")
    else {
        throw attrs.site.error(
            nil, "extension quantised-kv needs the root attributes quant, quant_group and quant_residual")
    }
    do {
        guard let q = try QuantScheme.resolve(name, group: group, residual: residual) else {
            throw LookMError.usage("quant = none")
        }
        try q.validate(headDim: shape.headDim)
        return q
    } catch let e as LookMError {
        throw attrs.site.error(
            nil, "quant = \"\(name)\", quant_group = \(group), quant_residual = \(residual): \(e.message)")
    }
}
