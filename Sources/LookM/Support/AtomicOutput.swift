import Foundation
import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An output file that appears under its final name only when complete: it is written to a
/// temporary file in the same directory (so the rename cannot cross file systems), synced, and
/// moved into place by `commit()`. Until then, and if anything fails, the final name is untouched.
final class AtomicOutput {
    let finalPath: String
    let temporaryPath: String
    private let force: Bool
    private var finished = false
    /// Slot in the signal handler's table: an interrupted run removes its temporary file.
    private var cleanupSlot: Int32 = -1

    /// - Parameters:
    ///   - inputs: paths that must never be written (the output may not be one of them, or a link to one).
    ///   - force: allow replacing an existing file at `finalPath`.
    init(finalPath: String, force: Bool, inputs: [String]) throws {
        self.finalPath = finalPath
        self.force = force
        var entry = stat(), target = stat()
        if lstat(finalPath, &entry) == 0 {
            // Compare what the name resolves to, so a link to the input is caught too.
            let resolves = stat(finalPath, &target) == 0
            for input in inputs {
                var s = stat()
                if input == finalPath || (resolves && stat(input, &s) == 0 && s.st_dev == target.st_dev && s.st_ino == target.st_ino) {
                    throw LookMError.output(finalPath, nil, "is the input file; choose another output with -o")
                }
            }
            guard force else { throw LookMError.output(finalPath, nil, "already exists; pass --force to replace it") }
            if resolves && (target.st_mode & S_IFMT) == S_IFDIR { throw LookMError.output(finalPath, nil, "is a directory") }
        }
        let (dir, base) = AtomicOutput.split(finalPath)
        let host = AtomicOutput.hostName()
        temporaryPath = "\(dir)/.\(base).lookm-tmp.\(host).\(getpid())"
        AtomicOutput.removeStaleTemporaries(dir: dir, base: base, host: host)
        cleanupSlot = lookm_cleanup_register(temporaryPath)
    }

    /// Removes `.<base>.lookm-tmp.<host>.<pid>` files of this host whose process is gone (a run
    /// killed with SIGKILL), for one `base` or (nil) every output in `dir`. Another host's files
    /// and live processes' files are never touched: on a shared file system, a pid means nothing
    /// elsewhere.
    static func removeStaleTemporaries(dir: String, base: String?, host: String) {
        let marker = ".lookm-tmp.\(host)."
        guard let d = opendir(dir) else { return }
        defer { closedir(d) }
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw -> String in
                let bytes = raw.prefix { $0 != 0 }
                return String(decoding: bytes, as: UTF8.self)
            }
            guard name.hasPrefix("."), let range = name.range(of: marker, options: .backwards),
                  base == nil || name[name.index(after: name.startIndex)..<range.lowerBound] == base!,
                  let pid = Int32(name[range.upperBound...]), pid > 0 else { continue }
            if pid == getpid() || (kill(pid, 0) == -1 && Glibc.errno == ESRCH) {
                unlink("\(dir)/\(name)")
            }
        }
    }

    /// Writes a small text file atomically (a sweep result).
    static func write(_ text: String, to path: String, force: Bool, inputs: [String]) throws {
        let output = try AtomicOutput(finalPath: path, force: force, inputs: inputs)
        let fd = open(output.temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LookMError.output(path, nil, "cannot create: \(AtomicOutput.errno())") }
        let bytes = Array(text.utf8)
        let failure = bytes.withUnsafeBytes { FileDescriptors.writeAll(fd, $0.baseAddress!, $0.count) }
        close(fd)
        if let failure { throw LookMError.output(path, nil, "cannot write: \(failure.reason)") }
        try output.commit()
    }

    /// Syncs the temporary file and moves it to the final name. Call after the file is closed.
    func commit() throws {
        let fd = open(temporaryPath, O_RDONLY)
        guard fd >= 0 else { throw LookMError.output(finalPath, nil, "temporary file vanished: \(AtomicOutput.errno())") }
        let synced = fsync(fd)
        close(fd)
        guard synced == 0 else { throw LookMError.output(finalPath, nil, "cannot sync: \(AtomicOutput.errno())") }
        if force {
            guard rename(temporaryPath, finalPath) == 0 else { throw LookMError.output(finalPath, nil, "cannot rename into place: \(AtomicOutput.errno())") }
        } else {
            // link() fails if something appeared under the final name meanwhile: never clobber it.
            guard link(temporaryPath, finalPath) == 0 else {
                let why = Glibc.errno == EEXIST ? "appeared while lookm was writing; pass --force to replace it" : "cannot move into place: \(AtomicOutput.errno())"
                throw LookMError.output(finalPath, nil, why)
            }
            unlink(temporaryPath)
        }
        finished = true
        lookm_cleanup_unregister(cleanupSlot)
        let dir = AtomicOutput.split(finalPath).dir
        let dfd = open(dir, O_RDONLY)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }

    /// Removes the temporary file; the final name is left as it was.
    func discard() {
        if !finished { unlink(temporaryPath) }
        finished = true
        lookm_cleanup_unregister(cleanupSlot)
    }

    deinit { discard() }

    static func split(_ path: String) -> (dir: String, base: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let dir = String(path[..<slash])
        return (dir.isEmpty ? "/" : dir, String(path[path.index(after: slash)...]))
    }

    static func hostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count - 1) == 0 else { return "host" }
        let end = buf.firstIndex(of: 0) ?? buf.count
        let name = String(decoding: buf[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "host" : String(name.map { $0 == "/" ? "_" : $0 })
    }

    static func errno() -> String {
        String(cString: strerror(Glibc.errno))
    }
}
