import CHDF5
import CKernels
import CZstd

/// Chunks read without HDF5 (`H5Dataset.chunkCopies`): zstd frames, shuffled or not, decoded on the
/// thread that reads them, as HDF5's shuffle filter and ZstdFilter would decode them.
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

    /// Decodes filtered chunk `c` from its stored bytes into `out` (`c.bytes`): one zstd frame of
    /// exactly that size, then, if shuffled, the bytes of each element gathered back together.
    func decode(_ c: ChunkCopy, _ stored: UnsafeRawPointer, into out: UnsafeMutableRawPointer) throws {
        switch c.filters {
        case .none: out.copyMemory(from: stored, byteCount: c.bytes)
        case .zstd: try decompress(c, stored, into: out)
        case .shuffledZstd(let size):
            let shuffled = UnsafeMutableRawPointer.allocate(byteCount: c.bytes, alignment: 64)
            defer { shuffled.deallocate() }
            try decompress(c, stored, into: shuffled)
            lookm_unshuffle(
                shuffled.assumingMemoryBound(to: UInt8.self), out.assumingMemoryBound(to: UInt8.self), c.bytes / size,
                size)
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
