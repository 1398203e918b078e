/// One layer of a dump in memory, as the compressor needs it: keys and values raw (in the dump's
/// element type, half the bytes of Float32 for 16-bit dumps), per-query-head scores, and SnapKV's
/// window sums. Loaded on the calling thread (every HDF5 call), then shared read-only by workers.
final class LayerInput: @unchecked Sendable {
    let index: Int
    let key: TensorReader
    let value: TensorReader
    let keyRaw: RawHeads
    let valueRaw: RawHeads
    /// Accumulated attention per query head, when the selector uses scores.
    var scores: [[Float]]?
    /// Column sums of the window rows per query head, when the selector is SnapKV.
    var windowSums: [[Double]]?

    init(_ layer: DumpLayer) throws {
        index = layer.index
        key = layer.key
        value = layer.value
        keyRaw = try RawHeads(layer.key)
        valueRaw = try RawHeads(layer.value)
    }

    /// Kv head `g`'s keys or values as Float32 (checked for NaN and infinity).
    func floats(_ tensor: TensorReader, _ raw: RawHeads, head g: Int, into out: inout [Float]) throws {
        let n = tensor.rows * tensor.rowLength
        if out.count != n { out = [Float](repeating: 0, count: n) }
        try out.withUnsafeMutableBufferPointer { try tensor.convert(raw.head(g), head: g, into: $0) }
    }
}

/// Every head of one tensor as stored, in one allocation.
final class RawHeads: @unchecked Sendable {
    let bytesPerHead: Int
    private let storage: UnsafeMutableRawPointer

    init(_ tensor: TensorReader) throws {
        bytesPerHead = tensor.headBytes
        let heads = tensor.shape[0]
        storage = UnsafeMutableRawPointer.allocate(byteCount: max(1, bytesPerHead * heads), alignment: 64)
        do {
            for h in 0..<heads { try tensor.readRaw(head: h, into: storage + h * bytesPerHead) }
        } catch {
            storage.deallocate()
            throw error
        }
    }

    func head(_ h: Int) -> UnsafeRawPointer { UnsafeRawPointer(storage + h * bytesPerHead) }

    deinit { storage.deallocate() }
}
