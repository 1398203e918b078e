import CHDF5
import CKernels
import CZstd

/// HDF5 filter 32015 (zstd), registered in-process so lookm reads and writes zstd datasets without
/// a plugin. The format is the one of HDF5Plugin-Zstandard, which h5py's `hdf5plugin` builds on:
/// each chunk is one zstd frame, `cd_values[0]` is the compression level.
enum ZstdFilter {
    static let id: H5Z_filter_t = 32015
    /// HDF5 keeps this pointer for the life of the process, so it must be static storage.
    private static let name: StaticString = "zstd"
    /// No valid chunk of a lookm file decompresses past this; HDF5 itself caps chunks at 4 GiB.
    static let maxChunkBytes = 1 << 32

    /// The uncompressed size of the chunks being read, set by `H5Dataset` before each read (per
    /// thread: HDF5 runs filters on the reading thread): a frame that claims more is damaged or
    /// hostile and is rejected before anything is allocated.
    static var expectedChunkBytes: Int {
        get { Int(lookm_chunk_limit()) }
        set { lookm_set_chunk_limit(newValue) }
    }

    private static var limit: Int { expectedChunkBytes > 0 ? min(expectedChunkBytes, maxChunkBytes) : maxChunkBytes }

    /// Returns the number of valid bytes in `*buf`, or 0 to tell HDF5 the filter failed.
    private static func run(
        _ flags: UInt32, _ cdN: Int, _ cd: UnsafePointer<UInt32>?, _ nbytes: Int,
        _ bufSize: UnsafeMutablePointer<Int>?,
        _ buf: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
    ) -> Int {
        guard let buf, let bufSize, let input = buf.pointee else { return 0 }
        if flags & h5z_flag_reverse() != 0 {
            guard let (out, n) = decompress(input, nbytes) else { return 0 }
            H5free_memory(input)
            buf.pointee = out
            bufSize.pointee = n
            return n
        }
        let level: Int32 = (cdN > 0 && cd != nil) ? Int32(bitPattern: cd![0]) : 3
        let capacity = ZSTD_compressBound(nbytes)
        guard let out = H5allocate_memory(capacity, false) else { return 0 }
        let written = ZSTD_compress(out, capacity, input, nbytes, level)
        guard ZSTD_isError(written) == 0 else {
            H5free_memory(out)
            return 0
        }
        H5free_memory(input)
        buf.pointee = out
        bufSize.pointee = capacity
        return written
    }

    /// Decompresses one chunk into memory HDF5 owns. Frames that declare their size (what lookm and
    /// hdf5plugin write) decode in one call; others stream into a growing buffer. Both stop at
    /// `maxChunkBytes`, so a hostile header cannot make lookm allocate without bound.
    private static func decompress(_ input: UnsafeMutableRawPointer, _ nbytes: Int) -> (UnsafeMutableRawPointer, Int)? {
        let declared = ZSTD_getFrameContentSize(input, nbytes)
        if declared == ZSTD_CONTENTSIZE_ERROR { return nil }
        if declared != ZSTD_CONTENTSIZE_UNKNOWN {
            guard declared <= UInt64(limit) else { return nil }
            let n = Int(declared)
            guard let out = H5allocate_memory(max(n, 1), false) else { return nil }
            let r = ZSTD_decompress(out, n, input, nbytes)
            guard ZSTD_isError(r) == 0, r == n else {
                H5free_memory(out)
                return nil
            }
            return (out, n)
        }
        guard let stream = ZSTD_createDStream() else { return nil }
        defer { ZSTD_freeDStream(stream) }
        var capacity = max(nbytes * 4, 1 << 16)
        guard var out = H5allocate_memory(capacity, false) else { return nil }
        var inBuf = ZSTD_inBuffer(src: input, size: nbytes, pos: 0)
        var outBuf = ZSTD_outBuffer(dst: out, size: capacity, pos: 0)
        while true {
            let r = ZSTD_decompressStream(stream, &outBuf, &inBuf)
            if ZSTD_isError(r) != 0 {
                H5free_memory(out)
                return nil
            }
            if r == 0 { return (out, outBuf.pos) }  // frame complete
            if inBuf.pos == inBuf.size && outBuf.pos < outBuf.size {
                H5free_memory(out)
                return nil
            }  // truncated
            if outBuf.pos == outBuf.size {
                guard capacity < limit, let grown = H5resize_memory(out, min(capacity * 2, limit)) else {
                    H5free_memory(out)
                    return nil
                }
                capacity = min(capacity * 2, limit)
                out = grown
                outBuf.dst = grown
                outBuf.size = capacity
            }
        }
    }

    /// Registers the filter unless a plugin already provides it. Called once by `H5Library`.
    static func register() -> Bool {
        if H5Zfilter_avail(id) > 0 { return true }
        var cls = H5Z_class2_t(
            version: h5z_class_t_vers(), id: id, encoder_present: 1, decoder_present: 1,
            name: UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self),
            can_apply: nil, set_local: nil,
            // Spelled out in full: a bare `run` would capture context, and C function pointers cannot.
            filter: { ZstdFilter.run($0, $1, $2, $3, $4, $5) })
        return H5Zregister(&cls) >= 0
    }
}
