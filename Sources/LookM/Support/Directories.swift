import Foundation

/// Directories that output paths need.
enum Directories {
    /// `mkdir -p`, safe when another worker creates the same directories at the same moment
    /// (Foundation's version fails if a component appears between its check and its mkdir).
    static func make(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o777) == 0 || errno == EEXIST {
                var s = stat()
                if stat(prefix, &s) == 0 && (s.st_mode & S_IFMT) == S_IFDIR { continue }
                throw LookMError.output(prefix, nil, "exists and is not a directory")
            }
            throw LookMError.output(path, nil, "cannot create the directory: \(String(cString: strerror(errno)))")
        }
    }
}
