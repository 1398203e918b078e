#if canImport(Glibc)
    import Glibc
#endif

/// Raw descriptor I/O shared by stdin spilling, stdout streaming and stderr messages: whole
/// writes and whole copies, retried on EINTR, with the failing side and errno reported.
enum FileDescriptors {
    enum Failure: Error {
        case read(Int32)
        case write(Int32)

        var reason: String {
            switch self {
            case .read(let e), .write(let e): return String(cString: strerror(e))
            }
        }
    }

    /// Writes all `count` bytes, or reports the errno of the write that failed.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Failure? {
        var offset = 0
        while offset < count {
            let w = write(fd, bytes + offset, count - offset)
            if w < 0 && errno == EINTR { continue }
            guard w > 0 else { return .write(w < 0 ? errno : EIO) }
            offset += w
        }
        return nil
    }

    /// Copies everything readable from `source` to `target`; returns the bytes copied.
    static func copy(from source: Int32, to target: Int32) -> Result<Int, Failure> {
        let size = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        var total = 0
        while true {
            let n = read(source, buffer, size)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return .failure(.read(errno)) }
            if n == 0 { return .success(total) }
            if let failure = writeAll(target, buffer, n) { return .failure(failure) }
            total += n
        }
    }
}
