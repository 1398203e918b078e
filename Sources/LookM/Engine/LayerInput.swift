import CKernels
import Foundation

/// Storage for one layer's raw keys and values, reused from layer to layer (a fresh allocation per
/// layer would page-fault a layer's worth of memory each time).
final class LayerBuffers: Sendable {
    fileprivate let key = RawBuffer()
    fileprivate let value = RawBuffer()
}

/// One layer of a dump in memory, as the engine needs it: keys and values raw (in the dump's
/// element type, half the bytes of Float32 for 16-bit dumps), per-query-head scores, and SnapKV's
/// window sums. Every HDF5 call happens on the calling thread: `init` (and `read(head:)`), then
/// `LayerAttention.load` fills what the selectors read; only after that do workers share it, read-only.
final class LayerInput: @unchecked Sendable {
    let index: Int
    let key: TensorReader
    let value: TensorReader
    let keyRaw: RawHeads
    let valueRaw: RawHeads
    /// Accumulated attention per query head, when a selector uses scores (set by `LayerAttention`).
    var scores: [[Float]]?
    /// Column sums of the window rows per query head, when a selector is SnapKV, and how many rows.
    var windowSums: [[Double]]?
    var windowSumRows = 0

    /// With `read: false` nothing is read yet (`read(head:)` fills head by head, so the next layer
    /// can stream in while workers still use the buffers' other heads).
    init(_ layer: DumpLayer, buffers: LayerBuffers, read: Bool = true) throws {
        index = layer.index
        key = layer.key
        value = layer.value
        keyRaw = try RawHeads(layer.key, in: buffers.key, read: read)
        valueRaw = try RawHeads(layer.value, in: buffers.value, read: read)
    }

    /// Kv head `g`'s keys as Float32 (checked for NaN and infinity) in `ws`'s key slot: what a
    /// worker computes with. Valid until the worker converts another head's keys.
    func keys(head g: Int, _ ws: Workspace) throws -> UnsafeBufferPointer<Float> {
        try floats(key, keyRaw, head: g, into: ws.floats(.headKeys, key.rows * key.rowLength))
    }

    /// Kv head `g`'s values, as `keys(head:_:)` does, in the value slot.
    func values(head g: Int, _ ws: Workspace) throws -> UnsafeBufferPointer<Float> {
        try floats(value, valueRaw, head: g, into: ws.floats(.headValues, value.rows * value.rowLength))
    }

    /// Kv head `g`'s keys as stored, checked for NaN and infinity, for kernels that widen the
    /// elements as they read them (fidelity): no Float32 copy, except of a float64 dump's (converted
    /// in `ws`'s key slot as `keys(head:_:)` does). Valid while the layer's raw buffers are.
    func keyRows(head g: Int, _ ws: Workspace) throws -> lookm_rows {
        try key.rows(try keyRaw.head(g), head: g) ?? lookm_rows(try keys(head: g, ws))
    }

    /// Kv head `g`'s values, as `keyRows(head:_:)` gives the keys.
    func valueRows(head g: Int, _ ws: Workspace) throws -> lookm_rows {
        try value.rows(try valueRaw.head(g), head: g) ?? lookm_rows(try values(head: g, ws))
    }

    /// Reads kv head `g`'s keys and values (HDF5: the calling thread must own HDF5).
    func read(head g: Int) throws {
        try keyRaw.read(head: g)
        try valueRaw.read(head: g)
    }

    /// Kv head `g`'s keys or values as Float32 (checked for NaN and infinity) in `out`.
    @discardableResult
    func floats(_ tensor: TensorReader, _ raw: RawHeads, head g: Int, into out: UnsafeMutableBufferPointer<Float>)
        throws -> UnsafeBufferPointer<Float>
    {
        let n = tensor.rows * tensor.rowLength
        let part = UnsafeMutableBufferPointer(rebasing: out[0..<n])
        try tensor.convert(try raw.head(g), head: g, into: part)
        return UnsafeBufferPointer(part)
    }

    /// As above, into a new array.
    func floats(_ tensor: TensorReader, _ raw: RawHeads, head g: Int) throws -> [Float] {
        var out = [Float](repeating: 0, count: tensor.rows * tensor.rowLength)
        try out.withUnsafeMutableBufferPointer { _ = try floats(tensor, raw, head: g, into: $0) }
        return out
    }
}

/// Every head of one tensor as stored, in one buffer. `read(head:)` (the thread that owns HDF5)
/// reads a head except the chunks that are plain copies from the file (TensorReader.readRawLeavingCopies):
/// the worker that converts the head copies them itself in `head(_:)`, so the copying from the
/// file is spread over the workers instead of queuing on the HDF5 thread.
final class RawHeads: @unchecked Sendable {
    let bytesPerHead: Int
    private let buffer: RawBuffer
    private let storage: UnsafeMutableRawPointer
    private let tensor: TensorReader
    /// Per head, chunks still to copy, under that head's lock (query heads of one kv head convert
    /// its keys in parallel); plain memory rather than a Swift array, whose element writes would be
    /// accesses to the whole array.
    private let pending: UnsafeMutableBufferPointer<[H5Dataset.ChunkCopy]>
    private let locks: [NSLock]

    init(_ tensor: TensorReader, in buffer: RawBuffer = RawBuffer(), read: Bool = true) throws {
        bytesPerHead = tensor.headBytes
        self.tensor = tensor
        let heads = tensor.shape[0]
        self.buffer = buffer
        if !read && buffer.capacity < bytesPerHead * heads && buffer.pointer != nil {
            // Growing would free memory a previous layer's workers may still read.
            throw LookMError(.other, "internal: \(tensor.dataset.path) is larger than the layer before it")
        }
        storage = buffer.reserve(bytesPerHead * heads)
        pending = .allocate(capacity: heads)
        pending.initialize(repeating: [])
        locks = (0..<heads).map { _ in NSLock() }
        if read { for h in 0..<heads { try self.read(head: h) } }
    }

    deinit {
        pending.deinitialize()
        pending.deallocate()
    }

    func read(head h: Int) throws {
        locks[h].lock()
        defer { locks[h].unlock() }
        pending[h] = try tensor.readRawLeavingCopies(head: h, into: storage + h * bytesPerHead)
    }

    func head(_ h: Int) throws -> UnsafeRawPointer {
        locks[h].lock()
        defer { locks[h].unlock() }
        if !pending[h].isEmpty {
            try tensor.dataset.copy(pending[h], into: storage + h * bytesPerHead)
            pending[h] = []
        }
        return UnsafeRawPointer(storage + h * bytesPerHead)
    }
}
