/// Writes one layer's result into a cache: the compressed heads (encoded by the workers already,
/// or encoded here in parallel), or the dump's rows as they are for a copied or sliding-window layer.
enum LayerWriter {
    /// Writes the dump's rows `start ..< seq_len` of layer `i` unchanged (a copied layer from 0, a
    /// sliding window from its start): nothing merged, the earlier positions dropped.
    private static func rows(
        from start: Int, layer i: Int, input: LayerInput, dump: DumpReader, to writer: CacheWriter,
        workspace ws: Workspace,
        copied reason: String, slidingWindow: Int? = nil
    ) throws -> CompressSummary.Layer {
        let s = dump.shape
        let L = s.seqLen
        let D = s.headDim
        let kept = L - start
        let storage = writer.quant.storage(dump.elementType)
        let out = try writer.layer(i, kept: kept, slidingWindow: slidingWindow)
        let position = (start..<L).map { Int32($0) }
        var slotOf = [Int32](repeating: -1, count: L)
        for (j, p) in position.enumerated() { slotOf[Int(p)] = Int32(j) }
        for g in 0..<s.numKVHeads {
            let k = try input.keys(head: g, ws)
            let v = try input.values(head: g, ws)
            try out.write(
                head: g, key: UnsafeBufferPointer(rebasing: k[(start * D)...]),
                value: UnsafeBufferPointer(rebasing: v[(start * D)...]),
                position: position, merged: [Int32](repeating: 0, count: kept), slotOf: slotOf)
        }
        return .init(
            index: i, kept: kept, copied: reason, merged: 0, dropped: start,
            kvBytesIn: ElementStorage(type: dump.elementType).bytes(heads: s.numKVHeads, kept: L, headDim: D),
            kvBytesOut: storage.bytes(heads: s.numKVHeads, kept: kept, headDim: D))
    }

    /// Writes one layer's result: its compressed heads, or the layer unchanged.
    static func write(
        _ result: LayerResult, layer i: Int, input: LayerInput, dump: DumpReader, to writer: CacheWriter,
        workspace ws: Workspace, threads: Int = 1
    ) throws -> CompressSummary.Layer {
        let s = dump.shape
        let D = s.headDim
        let G = s.numKVHeads
        let storage = writer.quant.storage(dump.elementType)
        switch result {
        case .copied(let reason):
            return try rows(from: 0, layer: i, input: input, dump: dump, to: writer, workspace: ws, copied: reason)
        case .window(let start, let size):
            // What the model itself holds of a sliding-window layer; every method keeps it whole.
            return try rows(
                from: start, layer: i, input: input, dump: dump, to: writer, workspace: ws,
                copied: "sliding window \(size)", slidingWindow: size)
        case .compressed(let kept, let heads):
            let counts = heads.map { $0.position.count }
            let out = try writer.layer(i, kept: counts)
            if writer.quant != nil {
                // Workers usually quantised every head already; the rest is quantised here.
                let quantised = try Parallel.map(G, threads: threads) { g, _ in
                    try heads[g].quantised
                        ?? heads[g].keys.withUnsafeBufferPointer { k in
                            try heads[g].values.withUnsafeBufferPointer { v in
                                try out.quantise(head: g, key: k, value: v)
                            }
                        }
                }
                for (g, h) in heads.enumerated() {
                    try out.write(
                        head: g, quantised: quantised[g], position: h.position, merged: h.merged, slotOf: h.slotOf)
                }
                return summary(i, kept, heads, counts, storage, dump)
            }
            // Workers usually encoded every head already (check they used the datasets' chunking);
            // otherwise convert, shuffle and compress here on the workers: HDF5 only stores bytes.
            for (g, h) in heads.enumerated() where h.encoded != nil {
                guard
                    out.encoders(head: g)?.key
                        == ChunkEncoder.planned(type: dump.elementType, shape: [G, counts[g], D], codec: writer.codec)
                else {
                    throw LookMError(.other, "internal: layer \(i) was encoded with another chunking than its datasets")
                }
            }
            let encoded = try Parallel.map(G, threads: threads) {
                g, _ -> ([ChunkEncoder.Chunk], [ChunkEncoder.Chunk])? in
                if let e = heads[g].encoded { return (e.key, e.value) }
                guard let encoders = out.encoders(head: g) else { return nil }
                return (
                    heads[g].keys.withUnsafeBufferPointer { encoders.key.encode($0) },
                    heads[g].values.withUnsafeBufferPointer { encoders.value.encode($0) }
                )
            }
            for (g, h) in heads.enumerated() {
                if let (k, v) = encoded[g] {
                    try out.write(
                        head: g, encodedKey: k, encodedValue: v, position: h.position, merged: h.merged,
                        slotOf: h.slotOf)
                } else {
                    try h.keys.withUnsafeBufferPointer { kb in
                        try h.values.withUnsafeBufferPointer { vb in
                            try out.write(
                                head: g, key: kb, value: vb, position: h.position, merged: h.merged, slotOf: h.slotOf)
                        }
                    }
                }
            }
            return summary(i, kept, heads, counts, storage, dump)
        }
    }

    private static func summary(
        _ i: Int, _ kept: Int, _ heads: [CompressedHead], _ counts: [Int], _ storage: any SlotStorage,
        _ dump: DumpReader
    ) -> CompressSummary.Layer {
        let s = dump.shape
        return .init(
            index: i, kept: kept, copied: nil, merged: heads.reduce(0) { $0 + $1.mergedCount },
            dropped: heads.reduce(0) { $0 + $1.droppedCount },
            kvBytesIn: ElementStorage(type: dump.elementType).bytes(
                heads: s.numKVHeads, kept: s.seqLen, headDim: s.headDim),
            kvBytesOut: storage.bytes(kept: counts, headDim: s.headDim),
            keptPerHead: Set(counts).count > 1 ? counts : nil)
    }
}
