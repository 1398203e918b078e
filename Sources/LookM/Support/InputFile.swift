#if canImport(Glibc)
import Glibc
#endif

/// A command's input argument made openable: a path as given, or `-` for standard input, which is
/// copied to an unlinked temporary file (HDF5 needs random access; memory stays bounded, unlike
/// reading the whole stream into a file image).
public final class InputFile {
    /// A path HDF5 can open.
    public let path: String
    /// What messages call it: the argument, or "stdin".
    public let displayName: String
    private var descriptor: Int32 = -1

    public init(_ argument: String) throws {
        guard argument == "-" else {
            var s = stat()
            guard stat(argument, &s) == 0 else {
                throw LookMError.invalid(argument, nil, String(cString: strerror(errno)).lowercased())
            }
            guard (s.st_mode & S_IFMT) != S_IFDIR else { throw LookMError.invalid(argument, nil, "is a directory, not a file") }
            path = argument
            displayName = argument
            return
        }
        displayName = "stdin"
        let dir = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(dir)/lookm-stdin-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw LookMError(.other, "stdin: cannot create a temporary file in \(dir): \(String(cString: strerror(errno)))") }
        descriptor = fd
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        path = "/proc/self/fd/\(fd)"
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(0, buffer, chunk)
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                throw LookMError.invalid("stdin", nil, "cannot read: \(String(cString: strerror(errno)))")
            }
            var off = 0
            while off < n {
                let w = write(fd, buffer + off, n - off)
                if w < 0 {
                    if errno == EINTR { continue }
                    throw LookMError(.other, "stdin: cannot spill to a temporary file: \(String(cString: strerror(errno)))")
                }
                off += w
            }
        }
    }

    deinit { if descriptor >= 0 { close(descriptor) } }
}
