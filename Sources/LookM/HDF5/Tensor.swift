import CHDF5
import CKernels

/// Float32 <-> stored element conversion, through CKernels (F16C when the CPU has it).
enum ElementConversion {
    /// Converts `count` raw stored elements to Float32.
    static func toFloat(_ raw: UnsafeRawPointer, _ type: ElementType, _ out: UnsafeMutablePointer<Float>, _ count: Int)
    {
        switch type {
        case .float16: lookm_f16_to_f32(raw.assumingMemoryBound(to: UInt16.self), out, count)
        case .bfloat16: lookm_bf16_to_f32(raw.assumingMemoryBound(to: UInt16.self), out, count)
        case .float32:
            if UnsafeRawPointer(out) != raw { out.update(from: raw.assumingMemoryBound(to: Float.self), count: count) }
        case .float64: lookm_f64_to_f32(raw.assumingMemoryBound(to: Double.self), out, count)
        }
    }

    /// Rounds `count` Float32 values to the stored type (round to nearest even).
    static func fromFloat(
        _ input: UnsafePointer<Float>, _ type: ElementType, _ raw: UnsafeMutableRawPointer, _ count: Int
    ) {
        switch type {
        case .float16: lookm_f32_to_f16(input, raw.assumingMemoryBound(to: UInt16.self), count)
        case .bfloat16: lookm_f32_to_bf16(input, raw.assumingMemoryBound(to: UInt16.self), count)
        case .float32: raw.assumingMemoryBound(to: Float.self).update(from: input, count: count)
        case .float64:
            let d = raw.assumingMemoryBound(to: Double.self)
            for i in 0..<count { d[i] = Double(input[i]) }
        }
    }
}

extension ElementConversion {
    /// Rounds to `type` and back: what storing and reloading as `type` gives.
    static func round(_ x: inout [Float], to type: ElementType) {
        guard type != .float32, !x.isEmpty else { return }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: x.count * type.byteSize, alignment: 16)
        defer { raw.deallocate() }
        x.withUnsafeMutableBufferPointer { buf in
            fromFloat(buf.baseAddress!, type, raw, buf.count)
            toFloat(raw, type, buf.baseAddress!, buf.count)
        }
    }
}

/// A float tensor `[heads, ...]` read as Float32 one head at a time, raw from HDF5 and converted
/// here. Every value read is checked: NaN or infinity is an invalid input naming the position.
final class TensorReader {
    let dataset: H5Dataset
    let element: StoredElement
    private let scratch = RawBuffer()

    init(_ dataset: H5Dataset) throws {
        guard dataset.shape.count >= 1 else {
            throw dataset.site.error(dataset.path, "is a scalar, expected a tensor")
        }
        try dataset.requireFilters()
        let dtype = H5Tget_class(dataset.fileType.id) == H5T_INTEGER ? try dataset.attributes().string("dtype") : nil
        self.dataset = dataset
        self.element = try StoredElement.classify(
            fileType: dataset.fileType.id, bf16Attribute: dtype,
            site: dataset.site, object: dataset.path)
    }

    var type: ElementType { element.type }
    var shape: [Int] { dataset.shape }
    /// Rows of one head (the second dimension), and elements per row.
    var rows: Int { shape.count > 1 ? shape[1] : 1 }
    var rowLength: Int { shape.count > 2 ? shape[2...].reduce(1, *) : 1 }

    /// Bytes of one head in the stored type.
    var headBytes: Int { rows * rowLength * element.type.byteSize }

    /// Reads rows `range` of head `head` as stored (raw bits, no conversion) into `raw`.
    func readRaw(head: Int, rows range: Range<Int>? = nil, into raw: UnsafeMutableRawPointer) throws {
        let r = range ?? 0..<rows
        if r == 0..<rows {
            try dataset.copy(try readRawLeavingCopies(head: head, into: raw), into: raw)
        } else {
            try readBox(head: head, rows: r, into: raw)
        }
    }

    /// Reads head `head` (all rows) as stored into `raw`, except the whole chunks that are plain
    /// copies from the file (H5Dataset.chunkCopies): those are returned, for `dataset.copy` on any
    /// thread, which then completes the head.
    func readRawLeavingCopies(head: Int, into raw: UnsafeMutableRawPointer) throws -> [H5Dataset.ChunkCopy] {
        guard shape.count > 1, let plan = dataset.chunkCopies(head: head, memoryType: element.memoryType.id) else {
            try readBox(head: head, rows: 0..<rows, into: raw)
            return []
        }
        try readBox(head: head, rows: plan.tail, into: raw + plan.tail.lowerBound * rowLength * element.type.byteSize)
        return plan.copies
    }

    /// Rows `r` of head `head` through HDF5's hyperslab read.
    private func readBox(head: Int, rows r: Range<Int>, into raw: UnsafeMutableRawPointer) throws {
        guard r.count * rowLength > 0 else { return }
        var start = [head]
        var count = [1]
        if shape.count > 1 {
            start.append(r.lowerBound)
            count.append(r.count)
        }
        if shape.count > 2 {
            start += shape[2...].map { _ in 0 }
            count += shape[2...]
        }
        try dataset.read(start: start, count: count, memoryType: element.memoryType.id, into: raw)
    }

    /// Converts raw stored values of head `head` (starting at row `firstRow`) to Float32, rejecting
    /// NaN and infinity with their position. Safe to call from any thread: no HDF5 call.
    func convert(_ raw: UnsafeRawPointer, head: Int, firstRow: Int = 0, into out: UnsafeMutableBufferPointer<Float>)
        throws
    {
        let n = out.count
        guard n > 0 else { return }
        ElementConversion.toFloat(raw, element.type, out.baseAddress!, n)
        let bad = lookm_first_nonfinite_f32(out.baseAddress!, n)
        if bad < n { throw nonFinite(out[bad], at: bad, head: head, firstRow: firstRow) }
    }

    /// Head `head` as stored in `raw`, checked for NaN and infinity as `convert` checks it, for
    /// kernels that widen elements as they read them (CKernels' `lookm_rows`); nil for float64,
    /// which must be rounded to Float32 first (`convert`).
    func rows(_ raw: UnsafeRawPointer, head: Int) throws -> lookm_rows? {
        let type: Int32
        switch element.type {
        case .float16: type = Int32(LOOKM_ROWS_F16)
        case .bfloat16: type = Int32(LOOKM_ROWS_BF16)
        case .float32: type = Int32(LOOKM_ROWS_F32)
        case .float64: return nil
        }
        let x = lookm_rows(data: raw, type: type)
        let n = rows * rowLength
        let bad = lookm_first_nonfinite_rows(x, n)
        if bad < n {
            var value: Float = 0
            lookm_rows_to_f32(x, bad, 1, &value)
            throw nonFinite(value, at: bad, head: head, firstRow: 0)
        }
        return x
    }

    private func nonFinite(_ value: Float, at bad: Int, head: Int, firstRow: Int) -> LookMError {
        let row = firstRow + bad / rowLength
        let what = value.isNaN ? "NaN" : "infinity"
        let at =
            shape.count > 2 ? "head \(head), row \(row), column \(bad % rowLength)" : "head \(head), position \(row)"
        return dataset.site.error(dataset.path, "\(what) at \(at)")
    }

    /// Reads rows `rows` of head `head` into `out` (count = rows.count * rowLength) as Float32.
    func read(head: Int, rows range: Range<Int>? = nil, into out: UnsafeMutableBufferPointer<Float>) throws {
        let r = range ?? 0..<rows
        let n = r.count * rowLength
        precondition(out.count >= n, "output buffer too small")
        guard n > 0 else { return }
        let raw =
            element.type == .float32
            ? UnsafeMutableRawPointer(out.baseAddress!) : scratch.reserve(n * element.type.byteSize)
        try readRaw(head: head, rows: r, into: raw)
        try convert(raw, head: head, firstRow: r.lowerBound, into: UnsafeMutableBufferPointer(rebasing: out[0..<n]))
    }

    /// One head as a new array (report reads a cache so; tests).
    func read(head: Int) throws -> [Float] {
        // Not zero-filled first: every element is written (a cache's layer is 13 MiB of them).
        try [Float](unsafeUninitializedCapacity: rows * rowLength) { out, count in
            try read(head: head, into: out)
            count = out.count
        }
    }
}

/// Writes a float tensor `[heads, ...]` head by head, rounding Float32 to the stored type.
final class TensorWriter {
    let dataset: H5Dataset
    let type: ElementType
    let codec: Codec
    private let memoryType: H5Handle
    private let scratch = RawBuffer()

    /// Chunks of one head by a block of rows of at least `minChunkBytes` (256 KiB: below that,
    /// shuffle cannot help zstd, and per-chunk overhead dominates reads).
    static let minChunkBytes = 256 << 10

    /// The rows are split evenly (1203 rows at 512 minimum: 2 chunks of 602, not 512 + 512 + 179
    /// with the last chunk's padding stored too).
    static func chunk(for shape: [Int], elementSize: Int) -> [Int] {
        guard shape.count >= 2 else { return shape }
        let rowBytes = max(1, shape[2...].reduce(elementSize, *))
        let minRows = max(1, (minChunkBytes + rowBytes - 1) / rowBytes)
        guard shape[1] > minRows else { return [1, max(1, shape[1])] + shape[2...] }
        let chunks = shape[1] / minRows
        return [1, (shape[1] + chunks - 1) / chunks] + shape[2...]
    }

    init(file: H5File, path: String, type: ElementType, shape: [Int], codec: Codec) throws {
        let fileType = try StoredElement.fileType(for: type, site: file.site, object: path)
        let chunk = TensorWriter.chunk(for: shape, elementSize: type.byteSize)
        dataset = try H5Dataset.create(
            in: file, path: path, fileType: fileType.id, shape: shape, chunk: chunk, codec: codec)
        if type == .bfloat16 { try dataset.attributes().set("dtype", string: "bfloat16") }
        self.type = type
        self.codec = codec
        self.memoryType = fileType
    }

    var rows: Int { dataset.shape.count > 1 ? dataset.shape[1] : 1 }
    var rowLength: Int { dataset.shape.count > 2 ? dataset.shape[2...].reduce(1, *) : 1 }

    /// Writes all rows of head `head` from `values` (count = rows * rowLength).
    func write(head: Int, _ values: UnsafeBufferPointer<Float>) throws {
        let n = rows * rowLength
        precondition(values.count >= n, "input buffer too small")
        guard n > 0 else { return }
        var start = [head]
        var count = [1]
        if dataset.shape.count > 1 {
            start += dataset.shape[1...].map { _ in 0 }
            count += dataset.shape[1...]
        }
        let raw = scratch.reserve(n * type.byteSize)
        ElementConversion.fromFloat(values.baseAddress!, type, raw, n)
        try dataset.write(start: start, count: count, memoryType: memoryType.id, from: raw)
    }

    func write(head: Int, _ values: [Float]) throws {
        try values.withUnsafeBufferPointer { try write(head: head, $0) }
    }
}
