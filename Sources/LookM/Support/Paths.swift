import Foundation

/// Lexical path handling, in one place (no symlink resolution: a shared file system may be
/// mounted differently, but the path users wrote is the one they will look for).
enum Paths {
    static func absolute(_ path: String, relativeTo base: String = FileManager.default.currentDirectoryPath) -> String {
        let joined = path.hasPrefix("/") ? path : base + "/" + path
        var parts: [Substring] = []
        for part in joined.split(separator: "/") {
            switch part {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    /// The folder (`.` for a bare name, `/` at the root) and the last component.
    static func split(_ path: String) -> (dir: String, base: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let dir = String(path[..<slash])
        return (dir.isEmpty ? "/" : dir, String(path[path.index(after: slash)...]))
    }

    /// Where files that have no place of their own go (stdin's copy, a cache on its way to
    /// stdout or through a device): `TMPDIR`, else /tmp.
    static var temporaryDirectory: String {
        getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    }

    /// The last component without `.h5`: what outputs are named after (`d.h5` -> `d.lookm.h5`).
    static func stem(_ path: String) -> String {
        let base = split(path).base
        return base.hasSuffix(".h5") ? String(base.dropLast(3)) : base
    }
}
