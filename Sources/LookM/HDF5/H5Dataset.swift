import CHDF5
import CZstd

/// One open HDF5 dataset: its shape, type, storage layout and filters, and hyperslab I/O.
/// Reads are planned per leading index (one head of a `[heads, tokens, ...]` tensor): when chunks
/// span several heads, the dataset is opened with a chunk cache that holds every chunk one such read
/// touches, so the next head's read finds them decoded instead of decompressing them again.
final class H5Dataset {
    let handle: H5Handle
    let site: H5Site
    let path: String
    let shape: [Int]
    let fileType: H5Handle
    /// Chunk dimensions, nil for contiguous or compact storage.
    let chunkShape: [Int]?
    /// Filter ids and names in pipeline order.
    let filters: [(id: Int32, name: String)]

    private init(
        handle: H5Handle, site: H5Site, path: String, shape: [Int], fileType: H5Handle,
        chunkShape: [Int]?, filters: [(id: Int32, name: String)]
    ) {
        self.handle = handle
        self.site = site
        self.path = path
        self.shape = shape
        self.fileType = fileType
        self.chunkShape = chunkShape
        self.filters = filters
    }

    var count: Int { shape.reduce(1, *) }
    var elementSize: Int { H5Tget_size(fileType.id) }

    static func open(in file: H5File, path: String) throws -> H5Dataset {
        let dataset = try openUnchecked(in: file, path: path)
        if file.site.side == .input { try dataset.requirePlausibleSize(fileBytes: file.sizeBytes) }
        return dataset
    }

    private static func openUnchecked(in file: H5File, path: String) throws -> H5Dataset {
        let site = file.site
        var handle = try site.own(
            H5Dopen2(file.handle.id, path, h5_default()), path, "opening the dataset", closer: H5Dclose)
        let space = try site.own(H5Dget_space(handle.id), path, "reading the shape", closer: H5Sclose)
        let rank = Int(try site.check(H5Sget_simple_extent_ndims(space.id), path, "reading the rank"))
        var dims = [hsize_t](repeating: 0, count: max(rank, 1))
        if rank > 0 { try site.check(H5Sget_simple_extent_dims(space.id, &dims, nil), path, "reading the shape") }
        let shape = rank == 0 ? [] : dims.map { Int($0) }
        let fileType = try site.own(H5Dget_type(handle.id), path, "reading the type", closer: H5Tclose)

        let dcpl = try site.own(
            H5Dget_create_plist(handle.id), path, "reading the creation properties", closer: H5Pclose)
        var chunkShape: [Int]? = nil
        if H5Pget_layout(dcpl.id) == H5D_CHUNKED, rank > 0 {
            var chunk = [hsize_t](repeating: 0, count: rank)
            try site.check(H5Pget_chunk(dcpl.id, Int32(rank), &chunk), path, "reading the chunk shape")
            chunkShape = chunk.map { Int($0) }
        }
        var filters: [(id: Int32, name: String)] = []
        let nfilters = Int(try site.check(H5Pget_nfilters(dcpl.id), path, "reading the filters"))
        for i in 0..<nfilters {
            var flags: UInt32 = 0
            var nelmts = 0
            var config: UInt32 = 0
            var name = [CChar](repeating: 0, count: 256)
            let id = H5Pget_filter2(dcpl.id, UInt32(i), &flags, &nelmts, nil, name.count, &name, &config)
            try site.check(id, path, "reading filter \(i)")
            let end = name.firstIndex(of: 0) ?? name.count
            filters.append((id: id, name: String(decoding: name[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)))
        }

        // Chunks of one head are read once each: no chunk cache, so HDF5 reads them straight into
        // the caller's buffer instead of through a cache buffer (measured: 14 % of compress time).
        if let chunk = chunkShape, shape.count >= 2, chunk[0] == 1 {
            let dapl = try site.own(
                H5Pcreate(h5p_dataset_access()), path, "making an access property list", closer: H5Pclose)
            try site.check(H5Pset_chunk_cache(dapl.id, 0, 0, 1.0), path, "turning off the chunk cache")
            handle = try site.own(
                H5Dopen2(file.handle.id, path, dapl.id), path, "opening the dataset", closer: H5Dclose)
        }
        // Chunks shared by several heads: reopen with a cache sized for one head's read.
        if let chunk = chunkShape, shape.count >= 2, chunk[0] > 1, shape.allSatisfy({ $0 > 0 }) {
            let elem = H5Tget_size(fileType.id)
            let chunkBytes = chunk.reduce(elem, *)
            var touched = 1
            for d in 1..<shape.count { touched *= (shape[d] + chunk[d] - 1) / chunk[d] }
            let bytes = touched.multipliedReportingOverflow(by: chunkBytes)
            if !bytes.overflow, bytes.partialValue < 1 << 34 {
                let dapl = try site.own(
                    H5Pcreate(h5p_dataset_access()), path, "making an access property list", closer: H5Pclose)
                let slots = [521, 10007, 100003, 1_000_003].first { $0 >= touched * 100 } ?? 1_000_003
                try site.check(
                    H5Pset_chunk_cache(dapl.id, slots, bytes.partialValue + chunkBytes, 1.0), path,
                    "sizing the chunk cache")
                handle = try site.own(
                    H5Dopen2(file.handle.id, path, dapl.id), path, "opening the dataset", closer: H5Dclose)
            }
        }
        return H5Dataset(
            handle: handle, site: site, path: path, shape: shape, fileType: fileType,
            chunkShape: chunkShape, filters: filters)
    }

    /// Creates a dataset; `chunk` nil means contiguous storage (then the codec must be `.none`).
    static func create(in file: H5File, path: String, fileType: hid_t, shape: [Int], chunk: [Int]?, codec: Codec) throws
        -> H5Dataset
    {
        let site = file.site
        let dims = shape.map { hsize_t($0) }
        let space = try site.own(
            H5Screate_simple(Int32(dims.count), dims, nil), path, "making the dataspace", closer: H5Sclose)
        let dcpl = try site.own(
            H5Pcreate(h5p_dataset_create()), path, "making a creation property list", closer: H5Pclose)
        // No modification times: the same content must give the same bytes (deterministic output).
        try site.check(H5Pset_obj_track_times(dcpl.id, false), path, "turning off time tracking")
        if let chunk, shape.allSatisfy({ $0 > 0 }) {
            let c = zip(chunk, shape).map { hsize_t(max(1, min($0, $1))) }
            try site.check(H5Pset_chunk(dcpl.id, Int32(c.count), c), path, "setting the chunk shape")
            try codec.apply(to: dcpl.id, elementSize: H5Tget_size(fileType), site: site, object: path)
        }
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try file.createGroups(String(path[..<slash]))
        }
        _ = try site.own(
            H5Dcreate2(file.handle.id, path, fileType, space.id, h5_default(), dcpl.id, h5_default()),
            path, "creating the dataset", closer: H5Dclose)
        return try openUnchecked(in: file, path: path)
    }

    /// Fails with an invalid-input error naming the dataset and the filter when this HDF5 cannot
    /// apply one of its filters (a plugin that is not installed).
    func requireFilters() throws {
        for f in filters where H5Zfilter_avail(H5Z_filter_t(f.id)) <= 0 {
            H5Eclear2(h5e_default())
            let name = f.name.isEmpty ? "" : " (\(f.name))"
            throw site.error(
                path,
                "needs HDF5 filter id \(f.id)\(name), which is not available; install its plugin and set HDF5_PLUGIN_PATH"
            )
        }
    }

    /// Attributes of this dataset.
    func attributes() -> H5Attributes {
        H5Attributes(owner: handle, site: site, objectPath: path)
    }

    private func selection(start: [Int], count: [Int]) throws -> (file: H5Handle, memory: H5Handle) {
        let fileSpace = try site.own(H5Dget_space(handle.id), path, "reading the dataspace", closer: H5Sclose)
        if !shape.isEmpty {
            let s = start.map { hsize_t($0) }
            let c = count.map { hsize_t($0) }
            try site.check(
                H5Sselect_hyperslab(fileSpace.id, H5S_SELECT_SET, s, nil, c, nil), path, "selecting \(start)+\(count)")
        }
        // The memory space has the selection's own shape: with a flat one, HDF5 maps chunks to
        // memory element by element (measured: 60 MB/s instead of GB/s).
        let dims = shape.isEmpty ? [hsize_t(1)] : count.map { hsize_t($0) }
        let memSpace = try site.own(
            H5Screate_simple(Int32(dims.count), dims, nil), path, "making a memory dataspace", closer: H5Sclose)
        return (fileSpace, memSpace)
    }

    /// Uncompressed bytes of one chunk (0 when not chunked).
    var chunkBytes: Int { chunkShape.map { $0.reduce(elementSize, *) } ?? 0 }

    /// Filtered data may expand by at most this factor over the bytes its chunks occupy in the
    /// file. Real tensors compress 1.1-3x and token tables ~10-100x; a 10 KB file that declares
    /// gigabytes of never-written, "compressed" chunks is damaged or hostile.
    static let maxExpansion = 1024
    /// Below this many bytes a dataset's size needs no justification.
    static let smallBytes = 1 << 20

    /// Rejects declared sizes and chunk shapes that would make lookm allocate far more than the
    /// file holds, before anything of that size is allocated: unfiltered data larger than the whole
    /// file, filtered data larger than `maxExpansion` times its stored chunks, chunks larger than
    /// their dataset (each chunk read is decoded whole), and swarms of tiny chunks (HDF5 keeps
    /// several KB of bookkeeping per chunk a read touches).
    func requirePlausibleSize(fileBytes: Int) throws {
        let declared = Self.bytes(shape, elementSize)
        if declared == Int.max {
            throw site.error(path, "declares \(shape) elements of \(elementSize) bytes: more than any file can hold")
        }
        if filters.isEmpty && declared > fileBytes {
            throw site.error(path, "declares \(shape) (\(declared) bytes) but the whole file holds \(fileBytes) bytes")
        }
        let stored = storageBytes
        if !filters.isEmpty && declared > Self.smallBytes && declared / Self.maxExpansion > stored {
            throw site.error(
                path,
                "declares \(shape) (\(declared) bytes) but its compressed chunks hold \(stored) bytes "
                    + "(more than \(Self.maxExpansion)x expansion): damaged or not written")
        }
        guard let chunk = chunkShape else { return }
        let chunkBytes = Self.bytes(chunk, elementSize)
        if chunkBytes > max(declared, Self.smallBytes) {
            throw site.error(
                path,
                "chunks of \(chunk) (\(chunkBytes) bytes) are larger than the dataset (\(declared) bytes); "
                    + "re-chunk it, e.g. h5repack -l \(path.dropFirst()):CHUNK=\(Self.sensibleChunk(shape))")
        }
        var chunks = 1
        for (n, c) in zip(shape, chunk) where c > 0 {
            chunks = chunks.multipliedReportingOverflow(by: (n + c - 1) / c).partialValue
        }
        if chunks > Self.manyChunks && chunkBytes < Self.smallChunkBytes {
            throw site.error(
                path,
                "\(chunks) chunks of \(chunkBytes) bytes: too small to read efficiently; "
                    + "re-chunk it, e.g. h5repack -l \(path.dropFirst()):CHUNK=\(Self.sensibleChunk(shape))")
        }
    }

    /// Datasets may have this many chunks of any size; more must be at least `smallChunkBytes` each.
    static let manyChunks = 4096
    static let smallChunkBytes = 4096

    /// Elements times `elementSize`, or `Int.max` on overflow.
    static func bytes(_ dims: [Int], _ elementSize: Int) -> Int {
        var total = elementSize
        for d in dims {
            let (p, overflow) = total.multipliedReportingOverflow(by: d)
            if overflow || d < 0 { return Int.max }
            total = p
        }
        return total
    }

    /// One head's rows as a chunk (what lookm itself writes), for the re-chunking hint.
    private static func sensibleChunk(_ shape: [Int]) -> String {
        (shape.count >= 2 ? [1] + shape.dropFirst() : shape).map(String.init).joined(separator: "x")
    }

    /// Reads the box `start ..< start + count` into `buffer` as `memoryType`, C order.
    func read(start: [Int], count: [Int], memoryType: hid_t, into buffer: UnsafeMutableRawPointer) throws {
        precondition(start.count == shape.count && count.count == shape.count, "selection rank")
        let (fileSpace, memSpace) = try selection(start: start, count: count)
        ZstdFilter.expectedChunkBytes = chunkBytes
        defer { ZstdFilter.expectedChunkBytes = 0 }
        try site.check(
            H5Dread(handle.id, memoryType, memSpace.id, fileSpace.id, h5_default(), buffer), path, "reading data")
    }

    /// One stored chunk of a head: `stored` bytes at `offset` in the file that decode
    /// (H5Dataset+ChunkCopies.swift) to `bytes` at byte `to` of the head.
    struct ChunkCopy: Sendable {
        let descriptor: Int32
        let offset: Int
        let stored: Int
        let bytes: Int
        let to: Int
        let filters: Filters

        /// The filter pipelines read without HDF5: none (a plain copy), zstd, and shuffle then zstd
        /// (what lookm and h5py with hdf5plugin write).
        enum Filters: Sendable {
            case none, zstd
            case shuffledZstd(elementSize: Int)
        }
    }

    /// Where head `head`'s whole chunks lie in the file, when reading them needs no HDF5 call:
    /// chunks of one head's whole rows, stored as `memoryType` (after the filters lookm decodes
    /// itself, `ChunkCopy.Filters`), each allocated inside the file, plain ones at their full size.
    /// `tail` is the rows past the last whole chunk (for `read`). Nil (use `read`) when the dataset
    /// does not qualify or any chunk is unallocated, skipped a filter or is damaged: a chunk is
    /// never trusted to fit the buffer or the file.
    func chunkCopies(head: Int, memoryType: hid_t) -> (copies: [ChunkCopy], tail: Range<Int>)? {
        guard let chunk = chunkShape, let pipeline = chunkFilters, shape.count >= 2, chunk.count == shape.count,
            chunk[0] == 1, chunk[1] > 0, chunk[2...] == shape[2...], H5Tequal(fileType.id, memoryType) > 0,
            let (descriptor, fileBytes) = file
        else { return nil }
        let rows = shape[1]
        let whole = rows / chunk[1]
        let rowBytes = shape[2...].reduce(elementSize, *)
        let bytes = chunk[1] * rowBytes
        // A filtered chunk larger than zstd's bound for its size cannot be a valid frame: HDF5 reports it.
        let largest = pipeline.isPlain ? bytes : ZSTD_compressBound(bytes)
        var copies: [ChunkCopy] = []
        for c in 0..<whole {
            let at = [hsize_t(head), hsize_t(c * chunk[1])] + shape[2...].map { _ in hsize_t(0) }
            var mask: UInt32 = 0
            var address: haddr_t = 0
            var stored: hsize_t = 0
            guard H5Dget_chunk_info_by_coord(handle.id, at, &mask, &address, &stored) >= 0, mask == 0,
                pipeline.isPlain ? stored == hsize_t(bytes) : stored > 0 && stored <= hsize_t(largest),
                address != haddr_t.max, address <= haddr_t(fileBytes), stored <= haddr_t(fileBytes) - address
            else {
                H5Eclear2(h5e_default())
                return nil
            }
            copies.append(
                ChunkCopy(
                    descriptor: descriptor, offset: Int(address), stored: Int(stored), bytes: bytes, to: c * bytes,
                    filters: pipeline))
        }
        return (copies, whole * chunk[1]..<rows)
    }

    /// The file's descriptor (HDF5's default driver, which lookm opens files with) and size, looked
    /// up once per dataset rather than for every head.
    private lazy var file: (Int32, Int)? = fileDescriptor()

    private func fileDescriptor() -> (Int32, Int)? {
        let file = H5Iget_file_id(handle.id)
        guard file >= 0 else { return nil }
        defer { H5Fclose(file) }
        var raw: UnsafeMutableRawPointer?
        var size: hsize_t = 0
        guard H5Fget_vfd_handle(file, h5_default(), &raw) >= 0, let raw, H5Fget_filesize(file, &size) >= 0 else {
            H5Eclear2(h5e_default())
            return nil
        }
        return (raw.load(as: Int32.self), Int(size))
    }

    /// Writes the box `start ..< start + count` from `buffer` holding `memoryType` elements.
    func write(start: [Int], count: [Int], memoryType: hid_t, from buffer: UnsafeRawPointer) throws {
        precondition(start.count == shape.count && count.count == shape.count, "selection rank")
        let (fileSpace, memSpace) = try selection(start: start, count: count)
        try site.check(
            H5Dwrite(handle.id, memoryType, memSpace.id, fileSpace.id, h5_default(), buffer), path, "writing data")
    }

    /// Reads a whole integer dataset, converted to Int64 (any integer type in the file).
    func readIntegers() throws -> [Int64] {
        guard H5Tget_class(fileType.id) == H5T_INTEGER else {
            throw site.error(path, "is \(StoredElement.describe(fileType.id)), expected integers")
        }
        try requireFilters()
        var values = [Int64](repeating: 0, count: count)
        if count > 0 {
            try values.withUnsafeMutableBytes {
                try read(
                    start: shape.map { _ in 0 }, count: shape, memoryType: h5t_native_int64(), into: $0.baseAddress!)
            }
        }
        return values
    }

    /// Writes a whole integer dataset from Int64 values, stored as `fileType`.
    func writeIntegers(_ values: [Int64]) throws {
        guard !values.isEmpty else { return }
        try values.withUnsafeBytes {
            try write(start: shape.map { _ in 0 }, count: shape, memoryType: h5t_native_int64(), from: $0.baseAddress!)
        }
    }
}

extension H5Dataset {
    /// Bytes the dataset occupies in the file (after filters).
    var storageBytes: Int { Int(H5Dget_storage_size(handle.id)) }

    /// "chunk 1x1024x64, shuffle+zstd" or "contiguous".
    var storageDescription: String {
        var s = chunkShape.map { "chunk " + $0.map(String.init).joined(separator: "x") } ?? "contiguous"
        if !filters.isEmpty {
            s +=
                ", "
                + filters.map { f in
                    switch f.id {
                    case 1: return "deflate"
                    case 2: return "shuffle"
                    case 3: return "fletcher32"
                    case ZstdFilter.id: return "zstd"
                    default: return f.name.isEmpty ? "filter \(f.id)" : "\(f.name) (\(f.id))"
                    }
                }.joined(separator: "+")
        }
        return s
    }
}
