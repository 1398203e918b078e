import CHDF5

/// Writes a synthetic `lookm-kv-dump` (see `SyntheticLayer` for what makes it realistic).
/// Deterministic for a given seed and shape, whatever the thread count.
public enum SyntheticDump {
    public struct Summary: Sendable {
        public var path: String
        public var seqLen: Int
        public var fileBytes: Int
    }

    public static func write(
        _ o: SynthOptions, to path: String, force: Bool, threads: Int = Parallel.defaultThreads,
        progress: ((Int, Int) -> Void)? = nil
    ) throws -> Summary {
        try o.validate()
        BLAS.configure()
        let output = try AtomicOutput(finalPath: path, force: force, inputs: [])
        var promptRng = SeededRandom(seed: o.seed, stream: [0xFFFF])
        let prompt = SyntheticPrompt(o, rng: &promptRng)
        let L = o.seqLen
        let D = o.headDim
        let H = o.heads
        let G = o.resolvedKVHeads
        let group = H / G
        let scale = 1 / Double(D).squareRoot()
        do {
            let file = try H5File.create(output.temporaryPath, displayName: path)
            let attrs = try file.rootAttributes()
            try attrs.set("format", string: Layout.dumpFormat)
            try attrs.set("format_version", int: Layout.version)
            try ModelShape(numLayers: o.layers, numHeads: H, numKVHeads: G, headDim: D, seqLen: L).write(attrs)
            try attrs.set("model", string: o.model)
            try attrs.set("attn_scale", double: scale)
            try prompt.tokens.write(file)
            if o.probes > 0 {
                let d = try H5Dataset.create(
                    in: file, path: Layout.probePosition, fileType: h5t_std_i64le(),
                    shape: [o.probes], chunk: nil, codec: .none)
                try d.writeIntegers((0..<o.probes).map { Int64(L + $0) })
            }
            for layer in 0..<o.layers {
                try writeLayer(layer, o, prompt, file, scale: Float(scale), group: group, threads: threads)
                progress?(layer + 1, o.layers)
            }
            try file.flush()
        }
        try output.commit()
        return Summary(path: path, seqLen: L, fileBytes: SourceInfo.fileSize(path))
    }

    private static func writeLayer(
        _ layer: Int, _ o: SynthOptions, _ prompt: SyntheticPrompt, _ file: H5File,
        scale: Float, group: Int, threads: Int
    ) throws {
        let L = o.seqLen
        let D = o.headDim
        let H = o.heads
        let G = o.resolvedKVHeads
        let model = SyntheticLayer(options: o, prompt: prompt, layer: layer)

        // Generate in parallel (each head into its own slot), then write in a fixed order.
        var dirs = [SyntheticLayer.HeadDirections?](repeating: nil, count: G)
        var kv = [(key: [Float], value: [Float])?](repeating: nil, count: G)
        dirs.withUnsafeMutableBufferPointer { dirsBuf in
            kv.withUnsafeMutableBufferPointer { kvBuf in
                let d = UncheckedSendable(dirsBuf)
                let k = UncheckedSendable(kvBuf)
                Parallel.forEach(G, threads: threads) { g in
                    let dir = model.directions(kvHead: g)
                    d.value[g] = dir
                    k.value[g] = model.keysAndValues(kvHead: g, dir)
                }
            }
        }
        struct QueryHead {
            var query: [Float]
            var scores: [Float]
            var window: [Float]
            var probes: [Float]
        }
        var heads = [QueryHead?](repeating: nil, count: H)
        heads.withUnsafeMutableBufferPointer { buf in
            let out = UncheckedSendable(buf)
            Parallel.forEach(H, threads: threads) { h in
                let g = h / group
                let dir = dirs[g]!
                let key = kv[g]!.key
                let q = model.queries(head: h, rows: L, stream: 3, dir)
                var scores = [Float](repeating: 0, count: L)
                var window = [Float](repeating: 0, count: o.window * L)
                q.withUnsafeBufferPointer { qb in
                    key.withUnsafeBufferPointer { kb in
                        scores.withUnsafeMutableBufferPointer { sb in
                            window.withUnsafeMutableBufferPointer { wb in
                                CausalAttention(length: L, headDim: D, scale: scale)
                                    .run(
                                        query: qb.baseAddress!, key: kb.baseAddress!, scores: sb.baseAddress!,
                                        window: o.window > 0 ? wb.baseAddress : nil, windowRows: o.window)
                            }
                        }
                    }
                }
                let probes = o.probes > 0 ? model.queries(head: h, rows: o.probes, stream: 4, dir) : []
                out.value[h] = QueryHead(query: o.storeQuery ? q : [], scores: scores, window: window, probes: probes)
            }
        }

        let codec = o.codec
        let keyW = try TensorWriter(
            file: file, path: Layout.layer(layer, .key), type: o.dtype, shape: [G, L, D], codec: codec)
        let valueW = try TensorWriter(
            file: file, path: Layout.layer(layer, .value), type: o.dtype, shape: [G, L, D], codec: codec)
        for g in 0..<G {
            try keyW.write(head: g, kv[g]!.key)
            try valueW.write(head: g, kv[g]!.value)
        }
        let scoreW = try TensorWriter(
            file: file, path: Layout.layer(layer, .attnScore), type: .float32, shape: [H, L], codec: codec)
        let queryW =
            o.storeQuery
            ? try TensorWriter(
                file: file, path: Layout.layer(layer, .query), type: o.dtype, shape: [H, L, D], codec: codec) : nil
        let windowW =
            o.window > 0
            ? try TensorWriter(
                file: file, path: Layout.layer(layer, .windowAttn), type: .float32, shape: [H, o.window, L],
                codec: codec) : nil
        let probeW =
            o.probes > 0
            ? try TensorWriter(
                file: file, path: Layout.layer(layer, .probeQuery), type: o.dtype, shape: [H, o.probes, D], codec: codec
            ) : nil
        for h in 0..<H {
            let head = heads[h]!
            try scoreW.write(head: h, head.scores)
            try queryW?.write(head: h, head.query)
            try windowW?.write(head: h, head.window)
            try probeW?.write(head: h, head.probes)
        }
    }
}
