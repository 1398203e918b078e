#if canImport(Glibc)
    import Glibc
#endif

/// What a cache records about the dump it came from, so a rerun can tell whether the input changed.
public struct SourceInfo: Equatable, Codable, Sendable {
    public var name: String
    public var size: Int
    public var mtime: Int

    public init(name: String, size: Int, mtime: Int) {
        self.name = name
        self.size = size
        self.mtime = mtime
    }

    /// Stats `path`; `name` is the file name recorded (its last path component, or "-" for stdin).
    static func of(path: String, name: String) -> SourceInfo {
        var s = stat()
        guard stat(path, &s) == 0 else { return SourceInfo(name: name, size: 0, mtime: 0) }
        return SourceInfo(name: name, size: Int(s.st_size), mtime: Int(s.st_mtim.tv_sec))
    }
}

/// The version string written into caches and printed by `lookm --version`.
public let lookmVersion = "0.1.0"
