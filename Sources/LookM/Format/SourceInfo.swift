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

    /// What outputs record about the dump a command read (docs/format.md `source`,
    /// `source_size`, `source_mtime`): its file name, size and mtime; for stdin `-`, the size read,
    /// and mtime 0 (a stream has none, and the spilled copy's time would differ on every run).
    static func of(_ input: InputFile) -> SourceInfo {
        guard input.displayName != "stdin" else { return SourceInfo(name: "-", size: fileSize(input.path), mtime: 0) }
        return of(dump: input.path)
    }

    /// A dump named by path (batch mode): its last path component, size and mtime.
    static func of(dump path: String) -> SourceInfo {
        var s = stat()
        let name = Paths.split(path).base
        guard stat(path, &s) == 0 else { return SourceInfo(name: name, size: 0, mtime: 0) }
        return SourceInfo(name: name, size: Int(s.st_size), mtime: Int(s.st_mtim.tv_sec))
    }

    /// Bytes of the file at `path` (0 if it cannot be stat'ed).
    static func fileSize(_ path: String) -> Int {
        var s = stat()
        return stat(path, &s) == 0 ? Int(s.st_size) : 0
    }
}

/// The version string written into caches and printed by `lookm --version`.
public let lookmVersion = "0.1.0"
