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
        input: InputFile, destination: CacheDestination, force: Bool, method: Method, codec: Codec,
        threads: Int, progress: ((Int, Int) -> Void)? = nil
    ) throws -> CompressSummary {
        let start = ContinuousClock.now
        BLAS.configure()
        let dump = try DumpReader(path: input.path, displayName: input.displayName)
        let s = dump.shape
        let method = try method.fitted(to: dump)
        let compressor = LayerCompressor(method)
        if method.variant == .reference && s.numKVHeads != s.numHeads {
            throw LookMError.usage(
                "--variant reference reproduces code without grouped-query attention, but \(dump.name) has \(s.numHeads) query heads for \(s.numKVHeads) kv heads; use --variant paper (with --gqa-agg)"
            )
        }

        let (finalPath, displayOut) = try outputPath(destination, input: input)
        let output = try AtomicOutput(finalPath: finalPath, force: force || isStdout(destination), inputs: [input.path])
        let source = SourceInfo.of(input)
        let methodJSON = method.canonicalJSON(gqa: s.numKVHeads != s.numHeads, codec: codec)
        let writer = try CacheWriter(
            output: output, shape: s, model: dump.model, tokens: dump.tokens, elementType: dump.elementType,
            codec: codec, method: methodJSON, source: source, nextPosition: dump.nextPosition,
            slidingWindows: dump.header.has(.slidingWindow), raggedHeads: method.raggedHeads,
            quant: method.quant)
        let workspaces = Workspace.pool(threads)
        let layers = try LayerPipeline(
            dump: dump, compressor: compressor, method: method, writer: writer,
            workspaces: workspaces
        ).run(progress: progress)
        try writer.finish()
        var fileBytes = SourceInfo.fileSize(finalPath)
        if isStdout(destination) { fileBytes = try copyToStdout(finalPath) }
        return CompressSummary(
            input: input.displayName, output: displayOut, method: JSONValue.parse(methodJSON) ?? .null,
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
}
