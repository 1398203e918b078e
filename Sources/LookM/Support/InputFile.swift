import CKernels

#if canImport(Glibc)
    import Glibc
#endif

/// A command's input argument made openable: a path as given, or `-` for standard input, which is
/// copied to a temporary file (HDF5 needs random access; memory stays bounded, unlike reading the
/// whole stream into a file image). The copy is removed when this value dies. It cannot be unlinked
/// up front: HDF5 1.10 resolves the real path of what it opens, and `/proc/self/fd/N` of a deleted
/// file has none.
public final class InputFile {
    /// A path HDF5 can open.
    public let path: String
    /// What messages call it: the argument, or "stdin".
    public let displayName: String
    private var descriptor: Int32 = -1
    private var spilled = false
    private var cleanupSlot: Int32 = -1
    /// Outputs never replace this file while it is open.
    private var registration: RunInputs.Registration?

    public init(_ argument: String) throws {
        guard argument == "-" else {
            var s = stat()
            guard stat(argument, &s) == 0 else {
                throw LookMError.invalid(argument, nil, String(cString: strerror(errno)).lowercased())
            }
            guard (s.st_mode & S_IFMT) != S_IFDIR else {
                throw LookMError.invalid(argument, nil, "is a directory, not a file")
            }
            path = argument
            displayName = argument
            registration = RunInputs.register(argument)
            return
        }
        displayName = "stdin"
        registration = RunInputs.register(descriptor: 0, name: "stdin")
        let dir = Paths.temporaryDirectory
        var template = Array("\(dir)/lookm-stdin-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw LookMError(
                .other, "stdin: cannot create a temporary file in \(dir): \(String(cString: strerror(errno)))")
        }
        descriptor = fd
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        spilled = true
        cleanupSlot = lookm_cleanup_register(path)
        if case .failure(let f) = FileDescriptors.copy(from: 0, to: fd) {
            if case .read = f { throw LookMError.invalid("stdin", nil, "cannot read: \(f.reason)") }
            throw LookMError(.other, "stdin: cannot spill to a temporary file in \(dir): \(f.reason)")
        }
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
        if spilled { unlink(path) }
        lookm_cleanup_unregister(cleanupSlot)
    }
}
