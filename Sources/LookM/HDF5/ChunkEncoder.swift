import CHDF5
import CKernels
import CZstd

/// Encodes chunks exactly as HDF5's pipeline would (stored element type, shuffle, zstd), without
/// HDF5: so worker threads can compress in parallel while one thread hands the finished bytes to
/// HDF5 with `H5Dwrite_chunk` (HDF5 runs its own filters under its global lock, one at a time).
/// The bytes equal what the shuffle + zstd filters produce, so readers see no difference.
struct ChunkEncoder: Sendable, Equatable {
    let type: ElementType
    /// Rows per chunk, total rows per head, elements per row.
    let chunkRows: Int
    let rows: Int
    let rowLength: Int
    let codec: Codec

    /// Only zstd and uncompressed datasets are encoded here; deflate goes through HDF5.
    var supported: Bool {
        switch codec {
        case .none, .zstd: return true
        case .deflate: return false
        }
    }

    struct Chunk: Sendable {
        var firstRow: Int
        var bytes: [UInt8]
    }

    /// One head's chunks, in row order. The last chunk is padded with zeros to the full chunk size.
    /// `zstd` is a compression context to reuse (a worker's): creating one per chunk costs more
    /// than compressing a small chunk. Same bytes either way.
    func encode(_ values: UnsafeBufferPointer<Float>, zstd context: ZstdContext? = nil) -> [Chunk] {
        let elem = type.byteSize
        let chunkElements = chunkRows * rowLength
        var chunks: [Chunk] = []
        var raw = [UInt8](repeating: 0, count: chunkElements * elem)
        var shuffled = [UInt8](repeating: 0, count: raw.count)
        var first = 0
        while first < rows {
            let n = min(chunkRows, rows - first) * rowLength
            raw.withUnsafeMutableBytes { r in
                if n < chunkElements { r.initializeMemory(as: UInt8.self, repeating: 0) }
                ElementConversion.fromFloat(values.baseAddress! + first * rowLength, type, r.baseAddress!, n)
            }
            var data = raw
            if codec != .none {
                if elem > 1 {
                    // HDF5's shuffle: byte j of every element, then byte j + 1, ...
                    raw.withUnsafeBufferPointer { src in
                        shuffled.withUnsafeMutableBufferPointer { dst in
                            lookm_shuffle(src.baseAddress!, dst.baseAddress!, chunkElements, elem)
                        }
                    }
                    data = shuffled
                }
                if case .zstd(let level) = codec {
                    let capacity = ZSTD_compressBound(data.count)
                    let cctx = context ?? ZstdContext()
                    data = data.withUnsafeBytes { i in
                        [UInt8](unsafeUninitializedCapacity: capacity) { o, count in
                            let written = ZSTD_compressCCtx(
                                cctx.pointer, o.baseAddress, capacity, i.baseAddress, i.count, Int32(level))
                            precondition(ZSTD_isError(written) == 0, "zstd cannot fail on a bound-sized buffer")
                            count = written
                        }
                    }
                }
            }
            chunks.append(Chunk(firstRow: first, bytes: data))
            first += chunkRows
        }
        return chunks
    }
}

extension ChunkEncoder {
    /// The encoder a `TensorWriter` of this shape will have, known before the dataset exists, so
    /// workers can encode a head as soon as it is computed; nil when HDF5 must run the codec.
    static func planned(type: ElementType, shape: [Int], codec: Codec) -> ChunkEncoder? {
        guard shape.count == 3, shape[1] > 0 else { return nil }
        let e = ChunkEncoder(
            type: type, chunkRows: TensorWriter.chunk(for: shape, elementSize: type.byteSize)[1],
            rows: shape[1], rowLength: shape[2], codec: codec)
        return e.supported ? e : nil
    }
}

extension TensorWriter {
    /// How this dataset's chunks are encoded (safe to use from any thread).
    var encoder: ChunkEncoder {
        ChunkEncoder(
            type: type, chunkRows: dataset.chunkShape?[1] ?? rows, rows: rows, rowLength: rowLength, codec: codec)
    }

    /// Writes chunks made by `encoder` for head `head` (HDF5's filters are skipped: already applied).
    func writeEncoded(head: Int, _ chunks: [ChunkEncoder.Chunk]) throws {
        for c in chunks {
            var offset =
                [hsize_t(head), hsize_t(c.firstRow)] + [hsize_t](repeating: 0, count: max(0, dataset.shape.count - 2))
            _ = try c.bytes.withUnsafeBytes { b in
                try dataset.site.check(
                    H5Dwrite_chunk(dataset.handle.id, h5_default(), 0, &offset, b.count, b.baseAddress),
                    dataset.path, "writing a chunk")
            }
        }
    }
}
