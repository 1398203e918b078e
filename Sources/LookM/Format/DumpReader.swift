import CHDF5

/// Opens a `lookm-kv-dump` (docs/format.md), validates its root attributes and token table, and hands
/// out one layer at a time. Nothing layer-sized is read until a caller asks for a head.
final class DumpReader {
    let file: H5File
    /// What messages call the file.
    var name: String { file.site.file }
    let shape: ModelShape
    let model: String?
    /// Softmax scale: the `attn_scale` attribute, else 1/sqrt(head_dim).
    let attnScale: Double
    let tokens: TokenTable
    let probePositions: [Int64]?
    let header: FormatHeader
    /// The rotary position of the token after the prompt, when the dump records one (`next-position`).
    let nextPosition: Int?
    /// Element type of the keys and values (the same in every layer).
    let elementType: ElementType

    init(path: String, displayName: String? = nil) throws {
        file = try H5File.openForReading(path, displayName: displayName)
        let attrs = try file.rootAttributes()
        header = try requireFormat(attrs, Layout.dumpFormat)
        for ext in [FormatExtension.raggedHeads, .quantisedKV] where header.has(ext) {
            throw file.site.error(
                nil,
                "extension \(ext.rawValue) is for caches (docs/format.md); a dump stores every position's keys and values as they are"
            )
        }
        shape = try ModelShape.read(attrs)
        nextPosition = try readNextPosition(attrs, header)
        model = try attrs.string("model")
        if let scale = try attrs.double("attn_scale") {
            guard scale.isFinite, scale > 0 else {
                throw file.site.error(nil, "attribute attn_scale = \(scale), must be a positive finite number")
            }
            attnScale = scale
        } else {
            attnScale = 1 / Double(shape.headDim).squareRoot()
        }
        tokens = try TokenTable.read(file, seqLen: shape.seqLen)
        if file.exists(Layout.probePosition) {
            let d = try file.openDataset(Layout.probePosition)
            guard d.shape.count == 1, d.shape[0] >= 1 else {
                throw file.site.error(
                    Layout.probePosition, "shape \(d.shape), expected [probes] with at least one probe")
            }
            let positions = try d.readIntegers()
            // With a recorded next position, probes are the greedy continuation from it.
            if let next = nextPosition, let k = positions.indices.first(where: { positions[$0] != Int64(next + $0) }) {
                throw file.site.error(
                    Layout.probePosition,
                    "probe \(k) at position \(positions[k]), but next_position = \(next) "
                        + "puts it at \(next + k)")
            }
            probePositions = positions
        } else {
            probePositions = nil
        }
        try shape.requireLayers(in: file)
        elementType = try DumpLayer(
            file: file, shape: shape, probes: probePositions?.count, index: 0, checkType: nil,
            header: header
        ).key.type
    }

    /// Opens and validates layer `i`: shapes against the root attributes, element types.
    func layer(_ i: Int) throws -> DumpLayer {
        try DumpLayer(
            file: file, shape: shape, probes: probePositions?.count, index: i, checkType: elementType, header: header)
    }
}

/// One layer of a dump: the datasets it has, each read head by head as Float32.
final class DumpLayer {
    let index: Int
    let key: TensorReader
    let value: TensorReader
    let attnScore: TensorReader?
    let query: TensorReader?
    let windowAttn: TensorReader?
    let probeQuery: TensorReader?
    /// The model's sliding window for this layer (`sliding-window` extension), nil for full attention.
    let slidingWindow: Int?
    /// With a sliding window: the first position the model still holds after the prefill.
    var windowStart: Int? { slidingWindow.map { key.rows - ($0 - 1) } }

    fileprivate init(
        file: H5File, shape s: ModelShape, probes: Int?, index i: Int, checkType: ElementType?, header: FormatHeader
    ) throws {
        let site = file.site
        index = i
        slidingWindow = try readSlidingWindow(file, layer: i, seqLen: s.seqLen, header: header)

        func tensor(_ name: LayerDataset, _ expected: [Int?], _ meaning: String, allowFloat64: Bool = false) throws
            -> TensorReader?
        {
            let path = Layout.layer(i, name)
            guard file.exists(path) else { return nil }
            guard file.isDataset(path) else { throw site.error(path, "is not a dataset") }
            let t = try TensorReader(try file.openDataset(path))
            let matches = t.shape.count == expected.count && zip(t.shape, expected).allSatisfy { $1 == nil || $0 == $1 }
            guard matches else {
                let want = expected.map { $0.map(String.init) ?? "*" }.joined(separator: ", ")
                throw site.error(path, "shape \(t.shape), expected [\(want)] (\(meaning))")
            }
            if t.type == .float64 && !allowFloat64 {
                throw site.error(path, "element type float64 is not supported here; use float16, bfloat16 or float32")
            }
            return t
        }

        let kvShape: [Int?] = [s.numKVHeads, s.seqLen, s.headDim]
        let kvMeaning = "num_kv_heads, seq_len, head_dim"
        guard let key = try tensor(.key, kvShape, kvMeaning) else {
            throw site.error(Layout.layer(i, .key), "missing (required)")
        }
        guard let value = try tensor(.value, kvShape, kvMeaning) else {
            throw site.error(Layout.layer(i, .value), "missing (required)")
        }
        guard key.type == value.type else {
            throw site.error(
                Layout.layer(i, .value),
                "element type \(value.type.rawValue) differs from the key's \(key.type.rawValue)")
        }
        if let checkType, key.type != checkType {
            throw site.error(
                Layout.layer(i, .key), "element type \(key.type.rawValue) differs from layer 0's \(checkType.rawValue)")
        }
        self.key = key
        self.value = value
        attnScore = try tensor(.attnScore, [s.numHeads, s.seqLen], "num_heads, seq_len", allowFloat64: true)
        query = try tensor(.query, [s.numHeads, s.seqLen, s.headDim], "num_heads, seq_len, head_dim")
        windowAttn = try tensor(
            .windowAttn, [s.numHeads, nil, s.seqLen], "num_heads, window, seq_len", allowFloat64: true)
        if let w = windowAttn, !(1...s.seqLen).contains(w.rows) {
            throw site.error(Layout.layer(i, .windowAttn), "window of \(w.rows) rows, expected 1...\(s.seqLen)")
        }
        probeQuery = try tensor(.probeQuery, [s.numHeads, probes, s.headDim], "num_heads, probes, head_dim")
        if let p = probeQuery, p.rows < 1 {
            throw site.error(Layout.layer(i, .probeQuery), "holds no probe")
        }
    }

    /// The datasets this layer has, in docs/format.md order.
    var available: [LayerDataset] {
        var result: [LayerDataset] = [.key, .value]
        if attnScore != nil { result.append(.attnScore) }
        if query != nil { result.append(.query) }
        if windowAttn != nil { result.append(.windowAttn) }
        if probeQuery != nil { result.append(.probeQuery) }
        return result
    }

    var tensors: [TensorReader] {
        [key, value, attnScore, query, windowAttn, probeQuery].compactMap { $0 }
    }
}

/// The `next_position` root attribute of a file with the `next-position` extension (nil otherwise).
func readNextPosition(_ attrs: H5Attributes, _ header: FormatHeader) throws -> Int? {
    guard header.has(.nextPosition) else { return nil }
    guard let next = try attrs.int("next_position") else {
        throw attrs.site.error(nil, "missing root attribute next_position (the file lists the next-position extension)")
    }
    // Rotary positions are non-negative and, for any real prompt, far below 2^40.
    guard (0..<(1 << 40)).contains(next) else {
        throw attrs.site.error(nil, "attribute next_position = \(next), expected a position in 0 ..< 2^40")
    }
    return next
}

/// The `sliding_window` attribute of layer `i` in a file with the `sliding-window` extension.
func readSlidingWindow(_ file: H5File, layer i: Int, seqLen: Int, header: FormatHeader) throws -> Int? {
    guard header.has(.slidingWindow), let w = try file.groupAttributes(Layout.layer(i)).int("sliding_window") else {
        return nil
    }
    // A window longer than the prompt keeps every position: such a layer is not windowed at all.
    guard (2...seqLen).contains(w) else {
        throw file.site.error(
            Layout.layer(i),
            "attribute sliding_window = \(w), expected 2 ... seq_len = \(seqLen) "
                + "(a window longer than the prompt is no window: leave the attribute out)")
    }
    return w
}
