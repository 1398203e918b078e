#if canImport(Glibc)
    import Glibc
#endif

/// Where a cache goes.
public enum CacheDestination: Sendable {
    case file(String)
    /// Built in a temporary file, then copied to stdout (memory stays bounded).
    case stdout
}

/// `lookm compress`: streams a dump layer by layer through a selector and a merge into a cache.
///
/// Per layer: every HDF5 read on this thread (keys and values kept raw, scores or window sums);
/// then per kv head in parallel: select, find pivots (sgemm), merge; the reference filter needs
/// every head's similarities between those two steps; then writes on this thread in head order.
/// Each head's arithmetic is independent and single-threaded, so the output never depends on the
/// thread count.
public enum Compressor {
    public static func run(
        input: InputFile, destination: CacheDestination, force: Bool, settings: CompressionSettings,
        threads: Int, progress: ((Int, Int) -> Void)? = nil
    ) throws -> CompressSummary {
        let start = ContinuousClock.now
        BLAS.configure()
        let dump = try DumpReader(path: input.path, displayName: input.displayName)
        let s = dump.shape
        let compressor = try LayerCompressor(settings)
        if settings.variant == .reference && s.numKVHeads != s.numHeads {
            throw LookMError.usage(
                "--variant reference reproduces code without grouped-query attention, but \(dump.name) has \(s.numHeads) query heads for \(s.numKVHeads) kv heads; use --variant paper (with --gqa-agg)"
            )
        }

        let (finalPath, displayOut) = try outputPath(destination, input: input)
        let output = try AtomicOutput(finalPath: finalPath, force: force || isStdout(destination), inputs: [input.path])
        let source = SourceInfo.of(input)
        let method = settings.canonicalJSON(gqa: s.numKVHeads != s.numHeads)
        let writer = try CacheWriter(
            output: output, shape: s, model: dump.model, tokens: dump.tokens, elementType: dump.elementType,
            codec: settings.codec, method: method, source: source, nextPosition: dump.nextPosition,
            slidingWindows: dump.header.has(.slidingWindow))
        let workspaces = Workspace.pool(threads)
        let layers = try LayerPipeline(
            dump: dump, compressor: compressor, settings: settings, writer: writer,
            workspaces: workspaces
        ).run(progress: progress)
        try writer.finish()
        var fileBytes = SourceInfo.fileSize(finalPath)
        if isStdout(destination) { fileBytes = try copyToStdout(finalPath) }
        return CompressSummary(
            input: input.displayName, output: displayOut, method: JSONValue.parse(method) ?? .null,
            seqLen: s.seqLen, layers: layers, kvBytesIn: layers.reduce(0) { $0 + $1.kvBytesIn },
            kvBytesOut: layers.reduce(0) { $0 + $1.kvBytesOut }, fileBytes: fileBytes,
            seconds: (ContinuousClock.now - start).seconds)
    }

    /// `dump.h5` -> `dump.lookm.h5` beside it, unless `-o` says otherwise.
    public static func defaultOutput(for input: String) -> String {
        let dir = Paths.split(input).dir
        return (dir == "." && !input.hasPrefix("./") ? "" : dir + "/") + Paths.stem(input) + ".lookm.h5"
    }

    private static func isStdout(_ d: CacheDestination) -> Bool {
        if case .stdout = d { return true }
        return false
    }

    private static func outputPath(_ destination: CacheDestination, input: InputFile) throws -> (String, String) {
        switch destination {
        case .file(let path): return (path, path)
        case .stdout:
            let dir = Paths.temporaryDirectory
            return ("\(dir)/lookm-stdout.\(AtomicOutput.hostName()).\(getpid()).h5", "stdout")
        }
    }

    /// Streams the finished cache to fd 1 and removes it. A closed pipe ends quietly (exit 4).
    private static func copyToStdout(_ path: String) throws -> Int {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw LookMError.output("stdout", nil, "temporary cache vanished") }
        unlink(path)
        defer { close(fd) }
        switch FileDescriptors.copy(from: fd, to: 1) {
        case .success(let total): return total
        case .failure(.write(EPIPE)): throw LookMError(.output, "")  // downstream closed: quiet
        case .failure(.write(let e)):
            throw LookMError.output("stdout", nil, "cannot write: \(FileDescriptors.Failure.write(e).reason)")
        case .failure(let f): throw LookMError.output("stdout", nil, "cannot read the temporary cache: \(f.reason)")
        }
    }

    /// Writes the dump's rows `start ..< seq_len` of layer `i` unchanged (a copied layer from 0, a
    /// sliding window from its start): nothing merged, the earlier positions dropped.
    private static func writeRows(
        from start: Int, layer i: Int, input: LayerInput, dump: DumpReader, to writer: CacheWriter,
        workspace ws: Workspace,
        copied reason: String, slidingWindow: Int? = nil
    ) throws -> CompressSummary.Layer {
        let s = dump.shape
        let L = s.seqLen
        let D = s.headDim
        let kept = L - start
        let bytesPerSlot = 2 * s.numKVHeads * D * dump.elementType.byteSize
        let out = try writer.layer(i, kept: kept, slidingWindow: slidingWindow)
        let position = (start..<L).map { Int32($0) }
        var slotOf = [Int32](repeating: -1, count: L)
        for (j, p) in position.enumerated() { slotOf[Int(p)] = Int32(j) }
        for g in 0..<s.numKVHeads {
            let k = try input.floats(input.key, input.keyRaw, head: g, into: ws.floats(.headKeys, L * D))
            let v = try input.floats(input.value, input.valueRaw, head: g, into: ws.floats(.headValues, L * D))
            try out.write(
                head: g, key: UnsafeBufferPointer(rebasing: k[(start * D)...]),
                value: UnsafeBufferPointer(rebasing: v[(start * D)...]),
                position: position, merged: [Int32](repeating: 0, count: kept), slotOf: slotOf)
        }
        return .init(
            index: i, kept: kept, copied: reason, merged: 0, dropped: start, kvBytesIn: L * bytesPerSlot,
            kvBytesOut: kept * bytesPerSlot)
    }

    /// Writes one layer's result: its compressed heads, or the layer unchanged.
    static func writeLayer(
        _ result: LayerCompressor.Result, layer i: Int, input: LayerInput, dump: DumpReader, to writer: CacheWriter,
        workspace ws: Workspace, threads: Int = 1
    ) throws -> CompressSummary.Layer {
        let s = dump.shape
        let L = s.seqLen
        let D = s.headDim
        let G = s.numKVHeads
        let bytesPerSlot = 2 * G * D * dump.elementType.byteSize
        switch result {
        case .copied(let reason):
            return try writeRows(from: 0, layer: i, input: input, dump: dump, to: writer, workspace: ws, copied: reason)
        case .window(let start, let size):
            // What the model itself holds of a sliding-window layer; every method keeps it whole.
            return try writeRows(
                from: start, layer: i, input: input, dump: dump, to: writer, workspace: ws,
                copied: "sliding window \(size)", slidingWindow: size)
        case .compressed(let kept, let heads) where heads.first?.encoded != nil:
            // Encoded by the workers already: check they used the chunking the datasets have.
            let out = try writer.layer(i, kept: kept)
            guard let encoders = out.encoders,
                encoders.key == ChunkEncoder.planned(type: dump.elementType, shape: [G, kept, D], codec: writer.codec)
            else {
                throw LookMError(.other, "internal: layer \(i) was encoded with another chunking than its datasets")
            }
            for (g, h) in heads.enumerated() {
                guard let e = h.encoded else {
                    throw LookMError(.other, "internal: layer \(i) kv head \(g) not encoded")
                }
                try out.write(
                    head: g, encodedKey: e.key, encodedValue: e.value, position: h.position, merged: h.merged,
                    slotOf: h.slotOf)
            }
            return .init(
                index: i, kept: kept, copied: nil, merged: heads.reduce(0) { $0 + $1.mergedCount },
                dropped: heads.reduce(0) { $0 + $1.droppedCount }, kvBytesIn: L * bytesPerSlot,
                kvBytesOut: kept * bytesPerSlot)
        case .compressed(let kept, let heads):
            let out = try writer.layer(i, kept: kept)
            if let encoders = out.encoders {
                // Convert, shuffle and compress every head on the workers; HDF5 only stores bytes.
                let encoded = try Parallel.map(G, threads: threads) { g, _ in
                    (
                        heads[g].keys.withUnsafeBufferPointer { encoders.key.encode($0) },
                        heads[g].values.withUnsafeBufferPointer { encoders.value.encode($0) }
                    )
                }
                for (g, h) in heads.enumerated() {
                    try out.write(
                        head: g, encodedKey: encoded[g].0, encodedValue: encoded[g].1,
                        position: h.position, merged: h.merged, slotOf: h.slotOf)
                }
            } else {
                for (g, h) in heads.enumerated() {
                    try h.keys.withUnsafeBufferPointer { kb in
                        try h.values.withUnsafeBufferPointer { vb in
                            try out.write(
                                head: g, key: kb, value: vb, position: h.position, merged: h.merged, slotOf: h.slotOf)
                        }
                    }
                }
            }
            return .init(
                index: i, kept: kept, copied: nil, merged: heads.reduce(0) { $0 + $1.mergedCount },
                dropped: heads.reduce(0) { $0 + $1.droppedCount }, kvBytesIn: L * bytesPerSlot,
                kvBytesOut: kept * bytesPerSlot)
        }
    }
}
