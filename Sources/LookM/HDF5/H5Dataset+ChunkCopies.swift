import CHDF5
import CKernels
import CZstd

#if canImport(Glibc)
    import Glibc
#endif

/// Chunks read without HDF5 (`H5Dataset.chunkCopies`): plain ones copied from the file, zstd frames,
/// shuffled or not, decoded on the thread that reads them as HDF5's shuffle filter and ZstdFilter
/// would decode them.
extension H5Dataset {
    /// The dataset's filter pipeline, when lookm decodes it itself; nil otherwise (HDF5 reads it).
    var chunkFilters: ChunkCopy.Filters? {
        switch filters.map(\.id) {
        case []: return ChunkCopy.Filters.none
        case [ZstdFilter.id]: return .zstd
        case [h5z_filter_shuffle(), ZstdFilter.id] where elementSize > 1: return .shuffledZstd(elementSize: elementSize)
        default: return nil
        }
    }

    /// Performs `copies` into the head at `base`: no HDF5 call, so any thread may.
    func copy(_ copies: [ChunkCopy], into base: UnsafeMutableRawPointer) throws {
        for c in copies { try copy(c, into: base + c.to) }
    }

    /// Chunk `c` into `out` (`c.bytes`): a plain chunk read in place; a filtered one read, then
    /// one zstd frame of exactly that size decoded and, if shuffled, the bytes of each element
    /// gathered back together.
    private func copy(_ c: ChunkCopy, into out: UnsafeMutableRawPointer) throws {
        if c.filters.isPlain { return try read(c, into: out) }
        let stored = UnsafeMutableRawPointer.allocate(byteCount: c.stored, alignment: 64)
        defer { stored.deallocate() }
        try read(c, into: stored)
        guard case .shuffledZstd(let size) = c.filters else { return try decompress(c, stored, into: out) }
        let shuffled = UnsafeMutableRawPointer.allocate(byteCount: c.bytes, alignment: 64)
        defer { shuffled.deallocate() }
        try decompress(c, stored, into: shuffled)
        lookm_unshuffle(
            shuffled.assumingMemoryBound(to: UInt8.self), out.assumingMemoryBound(to: UInt8.self), c.bytes / size, size)
    }

    /// The chunk's `c.stored` bytes from the file, with pread.
    private func read(_ c: ChunkCopy, into out: UnsafeMutableRawPointer) throws {
        var done = 0
        while done < c.stored {
            let n = pread(c.descriptor, out + done, c.stored - done, off_t(c.offset + done))
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                throw site.error(path, "reading data: the file ends inside a chunk or cannot be read")
            }
            done += n
        }
    }

    private func decompress(_ c: ChunkCopy, _ stored: UnsafeRawPointer, into out: UnsafeMutableRawPointer) throws {
        let n = ZSTD_decompress(out, c.bytes, stored, c.stored)
        guard ZSTD_isError(n) == 0, n == c.bytes else {
            let why = ZSTD_isError(n) != 0 ? String(cString: ZSTD_getErrorName(n)) : "\(n) bytes"
            throw site.error(
                path,
                "reading data: the zstd chunk at byte \(c.offset) does not decode to its \(c.bytes) bytes (\(why))")
        }
    }
}

extension H5Dataset.ChunkCopy.Filters {
    var isPlain: Bool {
        if case .none = self { return true }
        return false
    }
}
