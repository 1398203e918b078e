/// The layer loop of `compress`, overlapped: while the workers compute (and encode) layer i, the
/// thread that owns HDF5 writes layer i - 1 and reads layer i + 1 into the raw buffers, head by
/// head, as the workers finish converting each head of layer i. So reads and writes hide behind
/// the similarity GEMM, with no second layer in memory: the raw buffers hold one layer, shared
/// between the layer being computed and the one streaming in.
///
///     main (HDF5):  prepare i | write i-1 | read i+1, head 0 .. G-1 (each once freed) | wait
///     workers:                | convert head g -> free raw g -> select, GEMM, merge, encode
///
/// Each head's arithmetic is unchanged and independent of the others, so the output is the same
/// as computing layer after layer, for any thread count.
struct LayerPipeline {
    let dump: DumpReader
    let compressor: LayerCompressor
    let method: Method
    let writer: CacheWriter
    let workspaces: [Workspace]

    func run(progress: ((Int, Int) -> Void)?) throws -> [CompressSummary.Layer] {
        // Locals only in the closures below: a closure naming a property would capture `self`, and
        // with it the writer, whose release on error removes the temporary output file.
        let s = dump.shape
        let G = s.numKVHeads
        let workspaces = self.workspaces
        let buffers = LayerBuffers()
        let compressor = self.compressor
        let type = dump.elementType
        let codec = writer.codec
        let quant = writer.quant
        // Workers store each finished head as chunks right away (zstd and none; deflate runs in HDF5),
        // or quantise it for a quantised cache (a group that overflows is left to the writer, which
        // reports it).
        let encode: @Sendable (inout CompressedHead, Workspace) -> Void = { head, ws in
            if let quant {
                let n = head.position.count
                let q = head.keys.withUnsafeBufferPointer { k in
                    head.values.withUnsafeBufferPointer { v in
                        try? quant.quantise(keys: k, values: v, kept: n, headDim: s.headDim, type: type)
                    }
                }
                if let q {
                    head.quantised = q
                    head.keys = []
                    head.values = []
                }
                return
            }
            guard let e = ChunkEncoder.planned(type: type, shape: [G, head.position.count, s.headDim], codec: codec)
            else { return }
            head.encoded = (
                head.keys.withUnsafeBufferPointer { e.encode($0, zstd: ws.zstd) },
                head.values.withUnsafeBufferPointer { e.encode($0, zstd: ws.zstd) }
            )
            head.keys = []
            head.values = []
        }
        var layers: [CompressSummary.Layer] = []
        var pending: (index: Int, result: LayerResult, input: LayerInput)?
        func flush() throws {
            guard let p = pending else { return }
            pending = nil
            layers.append(
                try LayerWriter.write(
                    p.result, layer: p.index, input: p.input, dump: dump, to: writer,
                    workspace: workspaces[0], threads: workspaces.count))
            progress?(p.index + 1, s.numLayers)
        }

        var layer = try dump.layer(0)
        var input = try LayerInput(layer, buffers: buffers)
        for i in 0..<s.numLayers {
            let context = LayerContext(
                method: method, layer: i, layers: s.numLayers, modality: dump.tokens.modality, groupSize: s.groupSize)
            let kept =
                try layer.slidingWindow.map { LayerResult.window(start: layer.windowStart ?? 0, size: $0) }
                ?? compressor.prepare(input, layer: layer, dump: dump, context: context, threads: workspaces.count).map
            { .copied($0) }
            if let kept {
                // A copied or windowed layer is written from the raw buffers: no overlap for it.
                try flush()
                pending = (i, kept, input)
                try flush()
                if i + 1 < s.numLayers {
                    layer = try dump.layer(i + 1)
                    input = try LayerInput(layer, buffers: buffers)
                }
                continue
            }
            let freed = ReleaseFlags(count: G)
            let current = input
            let job = BackgroundJob(
                {
                    try compressor.compute(
                        current, shape: s, context: context, workspaces: workspaces,
                        released: { freed.release($0) }, finish: encode)
                }, finally: { freed.releaseAll() })
            // Errors are reported in layer order: writing i - 1, computing i, reading i + 1.
            var writeError: Error?
            var readError: Error?
            do { try flush() } catch { writeError = error }
            if writeError == nil && i + 1 < s.numLayers {
                do {
                    let next = try dump.layer(i + 1)
                    let nextInput = try LayerInput(next, buffers: buffers, read: false)
                    for g in 0..<G {
                        freed.wait(g)
                        try nextInput.read(head: g)
                    }
                    (layer, input) = (next, nextInput)
                } catch {
                    readError = error
                }
            }
            let computed = Result { try job.wait() }  // always waited: the workers use the buffers
            if let writeError { throw writeError }
            let result = try computed.get()
            if let readError { throw readError }
            pending = (i, result, current)
        }
        try flush()
        return layers
    }
}
