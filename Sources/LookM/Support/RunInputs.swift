#if canImport(Glibc)
    import Glibc
#endif

/// Every file this run reads, by device and inode: outputs (files, plots, records, stdout) are
/// compared against it, so no name, link or descriptor trick can make lookm write over an input.
/// `InputFile` registers what a command opens for as long as it is open; batch mode registers
/// every dump of its manifest before it writes anything, since a later dump may sit under an
/// earlier one's output name. Registrations end with their `Registration` (a library user's
/// process outlives many runs, and the inode of a deleted input is reused).
public enum RunInputs {
    struct Identity: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    /// Keeps one file registered while it lives.
    public final class Registration {
        fileprivate let identity: Identity
        fileprivate init(_ identity: Identity) { self.identity = identity }
        deinit { RunInputs.remove(identity) }
    }

    nonisolated(unsafe) private static var identities: [Identity: (name: String, count: Int)] = [:]
    private static let lock = Lock()

    /// Registers `path` (following links) as an input; nil if it cannot be stat'ed (opening it
    /// fails later, with the reason).
    public static func register(_ path: String) -> Registration? {
        var s = stat()
        guard stat(path, &s) == 0 else { return nil }
        return register(s, name: path)
    }

    /// Registers what descriptor `fd` refers to, if it is a regular file (standard input).
    static func register(descriptor fd: Int32, name: String) -> Registration? {
        var s = stat()
        guard fstat(fd, &s) == 0, (s.st_mode & S_IFMT) == S_IFREG else { return nil }
        return register(s, name: name)
    }

    private static func register(_ s: stat, name: String) -> Registration {
        let id = identity(s)
        lock.locked { identities[id] = (identities[id]?.name ?? name, (identities[id]?.count ?? 0) + 1) }
        return Registration(id)
    }

    private static func remove(_ id: Identity) {
        lock.locked {
            guard let entry = identities[id] else { return }
            identities[id] = entry.count > 1 ? (entry.name, entry.count - 1) : nil
        }
    }

    private static func identity(_ s: stat) -> Identity { Identity(device: UInt64(s.st_dev), inode: UInt64(s.st_ino)) }

    /// The registered input `s` is, if any.
    static func input(matching s: stat) -> String? {
        lock.locked { identities[identity(s)]?.name }
    }
}

/// A pthread mutex for the few process-wide tables.
final class Lock: @unchecked Sendable {
    private var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    deinit { pthread_mutex_destroy(&m) }
    func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&m)
        defer { pthread_mutex_unlock(&m) }
        return try body()
    }
}
