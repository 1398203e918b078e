/// `lookm report`: what a cache saved (from the cache alone) and, with its reference dump, what it
/// cost (attention-output error, mass recall, merge shifts), streaming both files layer by layer.
public enum Reporter {
    public static func report(cache cacheFile: InputFile, reference: InputFile?, threads: Int) throws -> Report {
        BLAS.configure()
        let cache = try CacheReader(path: cacheFile.path, displayName: cacheFile.displayName)
        let dump = try reference.map { try DumpReader(path: $0.path, displayName: $0.displayName) }
        if let dump { try requireMatch(cache, dump) }
        let s = cache.shape
        let G = s.numKVHeads
        let D = s.headDim
        let L = s.seqLen
        let storage = ElementStorage(type: cache.elementType)
        let type = cache.elementType
        var rows: [MemoryRow] = []
        var fidelity = FidelityAccumulator()
        let workspaces = Workspace.pool(threads)
        let buffers = LayerBuffers()
        for i in 0..<s.numLayers {
            let layer = try cache.layer(i)
            var heads: [CompressedHead] = []
            for g in 0..<G {
                let slots = try layer.slots(head: g)
                let (keys, values) = try layer.read(g)
                heads.append(
                    CompressedHead(
                        position: slots.position, keys: keys, values: values, merged: slots.merged,
                        slotOf: slots.slotOf))
            }
            // A quantised cache holds coded keys: the source check codes the dump's keys the same way.
            let quantised = dump == nil ? [] : try (0..<G).map { try layer.quantised(head: $0) }
            let quant = cache.quant
            let slots = layer.slots
            let text = heads.reduce(0) { acc, h in
                acc + h.position.lazy.filter { cache.tokens.modality[Int($0)] == .text }.count
            }
            rows.append(
                MemoryRow(
                    layer: i, kept: Double(slots) / Double(G), keptText: Double(text) / Double(G),
                    keptImage: Double(slots - text) / Double(G),
                    merged: heads.reduce(0) { $0 + $1.mergedCount }, dropped: heads.reduce(0) { $0 + $1.droppedCount },
                    kvBytesOriginal: storage.bytes(heads: G, kept: L, headDim: D), kvBytesCache: layer.kvBytes,
                    kvBytesDisk: layer.kvStoredBytes))
            if let dump {
                let dumpLayer = try dump.layer(i)
                if dumpLayer.slidingWindow != nil {
                    // The reference is what the model holds, which is what every cache keeps.
                    fidelity.addExact(
                        layer: i, heads: s.numHeads, source: try FidelityQueries.source(of: dumpLayer, dump),
                        modality: dump.tokens.modality)
                    continue
                }
                let input = try LayerInput(dumpLayer, buffers: buffers)
                try LayerFidelity.measure(
                    layer: i, input: input, queries: try FidelityQueries.load(dumpLayer, dump), heads: heads,
                    dump: dump, workspaces: workspaces, into: &fidelity
                ) { [cacheName = cache.name, recorded = cache.source, dumpName = dump.name] g, head, keys in
                    let stored: ((Int, UnsafeBufferPointer<Float>) -> [Float])? = quant.flatMap { q in
                        quantised[g].map { h in
                            { j, row in
                                q.storedKey(row, slot: j, of: h, kept: head.position.count, headDim: D, type: type)
                            }
                        }
                    }
                    try requireSource(
                        cache: cacheName, recorded: recorded, dump: dumpName, layer: i, kvHead: g, head: head,
                        keys: keys, headDim: D, stored: stored)
                }
            }
        }
        let method = JSONValue.parse(cache.method) ?? .string(cache.method)
        var target: Int?
        if case .object(let o) = method, case .number(let t)? = o["target_bytes"] { target = Int(exactly: t) }
        return Report(
            cache: cache.name, reference: dump?.name, method: method, seqLen: L, memory: MemoryRow.total(rows),
            layers: rows, fidelity: dump == nil ? nil : fidelity.summary(), targetBytes: target)
    }

    /// The slots no merge touched hold the dump's keys bit for bit (both sides are the stored
    /// element type widened to Float32; in a quantised cache, the dump's key coded with the slot's
    /// stored scales, `stored`): a dump of the same shape that is not the cache's source differs
    /// there, and its fidelity numbers would be meaningless.
    static func requireSource(
        cache: String, recorded: SourceInfo, dump: String, layer i: Int, kvHead g: Int, head: CompressedHead,
        keys: UnsafeBufferPointer<Float>, headDim D: Int, stored: ((Int, UnsafeBufferPointer<Float>) -> [Float])? = nil
    ) throws {
        for (j, p) in head.position.enumerated() where head.merged[j] == 0 {
            let row = Int(p) * D
            let expected = stored.map { $0(j, UnsafeBufferPointer(rebasing: keys[row..<(row + D)])) }
            guard
                (0..<D).allSatisfy({ head.keys[j * D + $0].bitPattern == (expected?[$0] ?? keys[row + $0]).bitPattern })
            else {
                throw LookMError.invalid(
                    dump, Layout.layer(i, .key),
                    "kv head \(g), position \(p) differs from the key the cache \(cache) kept there unmerged: "
                        + "not the dump the cache was made from (it records \(recorded.name), \(recorded.size) bytes)")
            }
        }
    }

    /// A reference must be the dump the cache came from: same shapes and token table.
    static func requireMatch(_ cache: CacheReader, _ dump: DumpReader) throws {
        guard cache.shape == dump.shape else {
            let a = cache.shape
            let b = dump.shape
            throw LookMError.invalid(
                dump.name, nil,
                "does not match the cache \(cache.name): layers/heads/kv heads/head_dim/seq_len "
                    + "\(b.numLayers)/\(b.numHeads)/\(b.numKVHeads)/\(b.headDim)/\(b.seqLen) against \(a.numLayers)/\(a.numHeads)/\(a.numKVHeads)/\(a.headDim)/\(a.seqLen); pass the dump the cache was made from"
            )
        }
        guard cache.tokens.modality == dump.tokens.modality else {
            throw LookMError.invalid(
                dump.name, Layout.modality,
                "differs from the cache \(cache.name)'s token table; pass the dump the cache was made from")
        }
        guard cache.nextPosition == dump.nextPosition else {
            throw LookMError.invalid(
                dump.name, nil,
                "records next_position \(dump.nextPosition.map(String.init) ?? "none"), the cache \(cache.name) "
                    + "\(cache.nextPosition.map(String.init) ?? "none"); pass the dump the cache was made from")
        }
        guard cache.elementType == dump.elementType else {
            throw LookMError.invalid(
                dump.name, nil,
                "holds \(dump.elementType.rawValue) tensors, the cache \(cache.name) \(cache.elementType.rawValue); pass the dump the cache was made from"
            )
        }
    }
}
