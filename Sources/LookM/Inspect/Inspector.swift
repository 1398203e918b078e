/// `lookm inspect`: validates a dump or cache completely (every layer, every head, every value) and
/// summarises it. Memory stays at one head's tensors whatever the file's size.
public enum Inspector {
    /// - Parameters:
    ///   - path: a readable path (stdin has already been spilled to a file by the caller).
    ///   - displayName: what messages and the report call the file.
    public static func inspect(path: String, displayName: String? = nil) throws -> InspectReport {
        let name = displayName ?? path
        let file = try H5File.openForReading(path, displayName: name)
        switch try file.rootAttributes().string("format") {
        case Layout.dumpFormat: return try inspectDump(path: path, name: name)
        case Layout.cacheFormat:
            return try inspect(cache: try CacheReader(path: path, displayName: name), path: path, name: name)
        case let other?:
            throw file.site.error(
                nil, "attribute format = \"\(other)\", expected \"\(Layout.dumpFormat)\" or \"\(Layout.cacheFormat)\"")
        case nil:
            throw file.site.error(
                nil, "missing root attribute format: not a lookm dump (\"\(Layout.dumpFormat)\") or cache")
        }
    }

    private static func inspectDump(path: String, name: String) throws -> InspectReport {
        let dump = try DumpReader(path: path, displayName: name)
        var layers: [InspectReport.Layer] = []
        var buffer = [Float]()
        for i in 0..<dump.shape.numLayers {
            let layer = try dump.layer(i)
            for tensor in layer.tensors { try readAll(tensor, &buffer) }
            layers.append(
                InspectReport.Layer(
                    index: i, datasets: layer.available.map(\.rawValue), windowRows: layer.windowAttn?.rows,
                    kvBytes: kvBytes(layer.key, layer.value),
                    kvStoredBytes: layer.key.dataset.storageBytes + layer.value.dataset.storageBytes,
                    storage: layer.key.dataset.storageDescription, slidingWindow: layer.slidingWindow))
        }
        return report(
            kind: .dump, path: path, name: name, shape: dump.shape, model: dump.model, dtype: dump.elementType,
            tokens: dump.tokens, layers: layers, attnScale: dump.attnScale, probes: dump.probePositions?.count,
            cache: nil,
            header: dump.header, nextPosition: dump.nextPosition)
    }

    /// Validates an open cache as `inspect` does (every value, the slot tables) and summarises it.
    static func inspect(cache: CacheReader, path: String, name: String) throws -> InspectReport {
        var layers: [InspectReport.Layer] = []
        for i in 0..<cache.shape.numLayers {
            let layer = try cache.layer(i)
            // Every value (dequantised, for a quantised cache) is read once and checked.
            for g in 0..<cache.shape.numKVHeads { _ = try layer.read(g) }
            var merged = 0
            var dropped = 0
            for h in 0..<cache.shape.numKVHeads {
                let slots = try layer.slots(head: h)
                merged += slots.merged.reduce(0) { $0 + Int($1) }
                dropped += slots.slotOf.lazy.filter { $0 < 0 }.count
            }
            layers.append(
                InspectReport.Layer(
                    index: i, kept: layer.slots / layer.kept.count, merged: merged, dropped: dropped,
                    kvBytes: layer.kvBytes, kvStoredBytes: layer.kvStoredBytes, storage: layer.storageDescription,
                    slidingWindow: layer.slidingWindow, keptPerHead: layer.ragged ? layer.kept : nil))
        }
        let method = JSONValue.parse(cache.method) ?? .string(cache.method)
        return report(
            kind: .cache, path: path, name: name, shape: cache.shape, model: cache.model, dtype: cache.elementType,
            tokens: cache.tokens, layers: layers, attnScale: nil, probes: nil,
            cache: InspectReport.Cache(
                method: method, source: cache.source, lookmVersion: cache.writerVersion,
                quant: cache.quant.map { .init(scheme: $0.name, group: $0.group, residual: $0.residual) }),
            header: cache.header, nextPosition: cache.nextPosition)
    }

    /// Reads every head of a tensor; `TensorReader` rejects NaN and infinity on the way.
    private static func readAll(_ tensor: TensorReader, _ buffer: inout [Float]) throws {
        let n = tensor.rows * tensor.rowLength
        if buffer.count < n { buffer = [Float](repeating: 0, count: n) }
        for h in 0..<tensor.shape[0] {
            try buffer.withUnsafeMutableBufferPointer { try tensor.read(head: h, into: $0) }
        }
    }

    private static func kvBytes(_ key: TensorReader, _ value: TensorReader) -> Int {
        (key.shape.reduce(1, *) + value.shape.reduce(1, *)) * key.type.byteSize
    }

    private static func report(
        kind: InspectReport.Kind, path: String, name: String, shape s: ModelShape, model: String?,
        dtype: ElementType, tokens: TokenTable, layers: [InspectReport.Layer], attnScale: Double?,
        probes: Int?, cache: InspectReport.Cache?, header: FormatHeader, nextPosition: Int?
    ) -> InspectReport {
        InspectReport(
            file: name, kind: kind, formatVersion: header.version,
            extensions: header.version >= 2 ? header.extensions.map(\.rawValue) : nil, nextPosition: nextPosition,
            valid: true,
            fileBytes: SourceInfo.fileSize(path), model: model,
            shape: .init(
                numLayers: s.numLayers, numHeads: s.numHeads, numKVHeads: s.numKVHeads, headDim: s.headDim,
                seqLen: s.seqLen),
            dtype: dtype, attnScale: attnScale, probes: probes,
            tokens: .init(
                counts: tokens.countsByModality, spans: tokens.spans, hasSegment: tokens.segment != nil,
                hasIds: tokens.ids != nil),
            layers: layers, kvBytes: layers.reduce(0) { $0 + $1.kvBytes },
            kvStoredBytes: layers.reduce(0) { $0 + $1.kvStoredBytes },
            cache: cache)
    }
}
