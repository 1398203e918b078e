import CKernels
import Foundation

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
        let L = s.seqLen
        var rows: [MemoryRow] = []
        var fidelity = FidelityAccumulator()
        let workspaces = Workspace.pool(threads)
        let buffers = LayerBuffers()
        // Overlapped as compress is (Engine/LayerPipeline.swift): while the workers measure layer
        // i, this thread (the one that owns HDF5) reads layer i + 1 of the cache and, head by head
        // as the workers release them, of the dump. Each head's arithmetic is the same as layer
        // after layer, so the report is the same for any thread count.
        var current = try load(0, cache: cache, dump: dump, buffers: buffers, read: true)
        for i in 0..<s.numLayers {
            rows.append(current.row)
            var next: LoadedLayer?
            if let input = current.input, let queries = current.queries, let dump {
                let freed = ReleaseFlags(count: G)
                let check = sourceCheck(cache: cache, dump: dump, layer: i, quantised: current.quantised)
                let heads = current.heads
                let job = BackgroundJob(
                    {
                        try LayerFidelity.compute(
                            input: input, queries: queries, heads: heads, dump: dump, workspaces: workspaces,
                            released: { freed.release($0) }, check: check)
                    }, finally: { freed.releaseAll() })
                var readError: Error?
                if i + 1 < s.numLayers {
                    do {
                        let loaded = try load(i + 1, cache: cache, dump: dump, buffers: buffers, read: false)
                        for g in 0..<G where loaded.input != nil {
                            freed.wait(g)
                            try loaded.input?.read(head: g)
                        }
                        next = loaded
                    } catch {
                        readError = error
                    }
                }
                // Errors in layer order: measuring i (a dump that is not the cache's source), then reading i + 1.
                let results = try job.wait()
                if let readError { throw readError }
                LayerFidelity.add(
                    results, layer: i, source: queries.source, groupSize: s.groupSize, into: &fidelity)
            } else {
                if let source = current.exact {
                    // A sliding-window layer: the reference is what the model holds, which every cache keeps.
                    fidelity.addExact(layer: i, heads: s.numHeads, source: source, modality: cache.tokens.modality)
                }
                if i + 1 < s.numLayers {
                    next = try load(i + 1, cache: cache, dump: dump, buffers: buffers, read: true)
                }
            }
            if let next { current = next }
        }
        let method = JSONValue.parse(cache.method) ?? .string(cache.method)
        var target: Int?
        if case .object(let o) = method, case .number(let t)? = o["target_bytes"] { target = Int(exactly: t) }
        return Report(
            cache: cache.name, reference: dump?.name, method: method, seqLen: L, memory: MemoryRow.total(rows),
            layers: rows, fidelity: dump == nil ? nil : fidelity.summary(), targetBytes: target)
    }

    /// One layer as report reads it (on the thread that owns HDF5): the cache's heads and memory
    /// row and, with a reference, what fidelity needs of the dump.
    private struct LoadedLayer {
        let heads: [CompressedHead]
        let row: MemoryRow
        /// Per kv head, when the cache is quantised (the source check codes the dump's keys alike).
        let quantised: [QuantisedHead?]
        /// The dump's layer in the raw buffers (read now, or head by head with `read: false`).
        let input: LayerInput?
        let queries: FidelityQueries?
        /// A sliding-window layer: counted exact, with this query source.
        let exact: QuerySource?
    }

    private static func load(_ i: Int, cache: CacheReader, dump: DumpReader?, buffers: LayerBuffers, read: Bool)
        throws -> LoadedLayer
    {
        let s = cache.shape
        let G = s.numKVHeads
        let layer = try cache.layer(i)
        var heads: [CompressedHead] = []
        for g in 0..<G {
            let slots = try layer.slots(head: g)
            let (keys, values) = try layer.read(g)
            heads.append(
                CompressedHead(
                    position: slots.position, keys: keys, values: values, merged: slots.merged, slotOf: slots.slotOf))
        }
        let slots = layer.slots
        let text = heads.reduce(0) { acc, h in
            acc + h.position.lazy.filter { cache.tokens.modality[Int($0)] == .text }.count
        }
        let row = MemoryRow(
            layer: i, kept: Double(slots) / Double(G), keptText: Double(text) / Double(G),
            keptImage: Double(slots - text) / Double(G),
            merged: heads.reduce(0) { $0 + $1.mergedCount }, dropped: heads.reduce(0) { $0 + $1.droppedCount },
            kvBytesOriginal: ElementStorage(type: cache.elementType).bytes(
                heads: G, kept: s.seqLen, headDim: s.headDim),
            kvBytesCache: layer.kvBytes, kvBytesDisk: layer.kvStoredBytes)
        guard let dump else {
            return LoadedLayer(heads: heads, row: row, quantised: [], input: nil, queries: nil, exact: nil)
        }
        let dumpLayer = try dump.layer(i)
        if dumpLayer.slidingWindow != nil {
            return LoadedLayer(
                heads: heads, row: row, quantised: [], input: nil, queries: nil,
                exact: try FidelityQueries.source(of: dumpLayer, dump))
        }
        return LoadedLayer(
            heads: heads, row: row, quantised: try (0..<G).map { try layer.quantised(head: $0) },
            input: try LayerInput(dumpLayer, buffers: buffers, read: read),
            queries: try FidelityQueries.load(dumpLayer, dump), exact: nil)
    }

    /// `requireSource` for kv head g of layer `i`, as the workers call it.
    private static func sourceCheck(cache: CacheReader, dump: DumpReader, layer i: Int, quantised: [QuantisedHead?])
        -> @Sendable (Int, CompressedHead, lookm_rows) throws -> Void
    {
        let (cacheName, recorded, dumpName) = (cache.name, cache.source, dump.name)
        let (quant, type, D) = (cache.quant, cache.elementType, cache.shape.headDim)
        return { g, head, keys in
            let stored: ((Int, UnsafeBufferPointer<Float>) -> [Float])? = quant.flatMap { q in
                quantised[g].map { h in
                    { j, row in q.storedKey(row, slot: j, of: h, kept: head.position.count, headDim: D, type: type) }
                }
            }
            try requireSource(
                cache: cacheName, recorded: recorded, dump: dumpName, layer: i, kvHead: g, head: head, keys: keys,
                headDim: D, stored: stored)
        }
    }

    /// The slots no merge touched hold the dump's keys bit for bit (both sides are the stored
    /// element type widened to Float32; in a quantised cache, the dump's key coded with the slot's
    /// stored scales, `stored`): a dump of the same shape that is not the cache's source differs
    /// there, and its fidelity numbers would be meaningless.
    static func requireSource(
        cache: String, recorded: SourceInfo, dump: String, layer i: Int, kvHead g: Int, head: CompressedHead,
        keys: lookm_rows, headDim D: Int, stored: ((Int, UnsafeBufferPointer<Float>) -> [Float])? = nil
    ) throws {
        guard D > 0 else { return }
        var dumpRow = [Float](repeating: 0, count: D)
        for (j, p) in head.position.enumerated() where head.merged[j] == 0 {
            lookm_rows_to_f32(keys, Int(p) * D, D, &dumpRow)
            let expected = stored.map { code in dumpRow.withUnsafeBufferPointer { code(j, $0) } } ?? dumpRow
            // Bit for bit: memcmp, 4 bytes per element (a closure per element was 3 % of report).
            let same = head.keys.withUnsafeBytes { kept in
                expected.withUnsafeBytes { e in
                    guard let a = kept.baseAddress, let b = e.baseAddress, e.count == D * 4 else { return false }
                    return memcmp(a + j * D * 4, b, D * 4) == 0
                }
            }
            guard same else {
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
