import CKernels
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Every file lookm writes goes through here, with one set of rules:
/// - it appears under its final name only when complete: written to a temporary file in the same
///   directory (so the rename cannot cross file systems), synced, and moved into place by
///   `commit()`; until then, and if anything fails, the final name is untouched;
/// - an existing file is replaced only with `force`, and never when it is one of the run's inputs
///   (`RunInputs`, compared by device and inode, so links and other names are caught too);
/// - a special file is never replaced: a character device or FIFO (`-o /dev/null`, a named pipe)
///   is written *through*, from a temporary file elsewhere once it is complete; a block device,
///   socket or directory is refused.
final class AtomicOutput {
    let finalPath: String
    let temporaryPath: String
    /// The final name is a character device or FIFO: the finished temporary file is copied into it.
    let writesThrough: Bool
    private let force: Bool
    private var finished = false
    /// Slot in the signal handler's table: an interrupted run removes its temporary file.
    private var cleanupSlot: Int32 = -1

    /// - Parameters:
    ///   - inputs: more paths that must never be written, besides those in `RunInputs`.
    ///   - force: allow replacing an existing regular file at `finalPath`.
    init(finalPath: String, force: Bool, inputs: [String] = []) throws {
        self.finalPath = finalPath
        self.force = force
        let registrations = inputs.map { RunInputs.register($0) }
        defer { withExtendedLifetime(registrations) {} }
        var entry = stat()
        var target = stat()
        var through = false
        if lstat(finalPath, &entry) == 0 {
            // What the name resolves to counts, so a link to an input or a device is caught too.
            if stat(finalPath, &target) == 0 {
                if let input = RunInputs.input(matching: target) {
                    throw LookMError.output(
                        finalPath, nil,
                        input == finalPath
                            ? "is the input file; choose another output name"
                            : "is the input file \(input) under another name; choose another output name")
                }
                switch target.st_mode & S_IFMT {
                case S_IFREG: break
                case S_IFCHR, S_IFIFO: through = true
                case S_IFDIR: throw LookMError.output(finalPath, nil, "is a directory")
                case S_IFBLK:
                    throw LookMError.output(
                        finalPath, nil,
                        "is a block device; lookm writes regular files, pipes and character devices only")
                default: throw LookMError.output(finalPath, nil, "is not a regular file; choose another output name")
                }
            }
            if !through && !force {
                throw LookMError.output(finalPath, nil, "already exists; pass --force to replace it")
            }
        }
        writesThrough = through
        let host = AtomicOutput.hostName()
        if through {
            let dir = Paths.temporaryDirectory
            temporaryPath = "\(dir)/lookm-through.\(host).\(getpid()).\(AtomicOutput.serial())"
        } else {
            let (dir, base) = Paths.split(finalPath)
            temporaryPath = "\(dir)/\(AtomicOutput.temporaryName(base: base, host: host, pid: getpid()))"
            AtomicOutput.removeStaleTemporaries(dir: dir, base: base, host: host)
        }
        cleanupSlot = lookm_cleanup_register(temporaryPath)
    }

    nonisolated(unsafe) private static var counter = 0
    private static func serial() -> Int {
        counter += 1
        return counter
    }

    /// `.<base>.lookm-tmp.<host>.<pid>`, with a long base shortened (prefix + hash) so the name
    /// stays within the file system's 255 bytes.
    static func temporaryName(base: String, host: String, pid: Int32) -> String {
        ".\(shortBase(base, host: host)).lookm-tmp.\(host).\(pid)"
    }

    private static func shortBase(_ base: String, host: String) -> String {
        let room = 255 - ".".utf8.count - ".lookm-tmp.".utf8.count - host.utf8.count - ".4294967295".utf8.count
        guard base.utf8.count > room else { return base }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for b in base.utf8 { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
        let suffix = "~" + String(hash, radix: 16)
        var prefix = ""
        for c in base where prefix.utf8.count + String(c).utf8.count + suffix.utf8.count <= max(room, 24) {
            prefix.append(c)
        }
        return prefix + suffix
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
                base == nil
                    || name[name.index(after: name.startIndex)..<range.lowerBound] == shortBase(base!, host: host),
                let pid = Int32(name[range.upperBound...]), pid > 0
            else { continue }
            if pid == getpid() || (kill(pid, 0) == -1 && Glibc.errno == ESRCH) {
                unlink("\(dir)/\(name)")
            }
        }
    }

    /// Writes a small text file (a plot, a sweep result) by the same rules.
    static func write(_ text: String, to path: String, force: Bool, inputs: [String] = []) throws {
        try AtomicOutput(finalPath: path, force: force, inputs: inputs).write(text)
    }

    /// Writes `text` as the whole file and commits it.
    func write(_ text: String) throws {
        let fd = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LookMError.output(finalPath, nil, "cannot create: \(AtomicOutput.errno())") }
        let bytes = Array(text.utf8)
        let failure = bytes.withUnsafeBytes {
            $0.count == 0 ? nil : FileDescriptors.writeAll(fd, $0.baseAddress!, $0.count)
        }
        close(fd)
        if let failure { throw LookMError.output(finalPath, nil, "cannot write: \(failure.reason)") }
        try commit()
    }

    /// Syncs the temporary file and moves it to the final name. Call after the file is closed.
    func commit() throws {
        let fd = open(temporaryPath, O_RDONLY)
        guard fd >= 0 else {
            throw LookMError.output(finalPath, nil, "temporary file vanished: \(AtomicOutput.errno())")
        }
        let synced = fsync(fd)
        close(fd)
        guard synced == 0 else { throw LookMError.output(finalPath, nil, "cannot sync: \(AtomicOutput.errno())") }
        if writesThrough {
            try copyThrough()
        } else if force {
            guard rename(temporaryPath, finalPath) == 0 else {
                throw LookMError.output(finalPath, nil, "cannot rename into place: \(AtomicOutput.errno())")
            }
        } else {
            // link() fails if something appeared under the final name meanwhile: never clobber it.
            guard link(temporaryPath, finalPath) == 0 else {
                let why =
                    Glibc.errno == EEXIST
                    ? "appeared while lookm was writing; pass --force to replace it"
                    : "cannot move into place: \(AtomicOutput.errno())"
                throw LookMError.output(finalPath, nil, why)
            }
            unlink(temporaryPath)
        }
        finished = true
        lookm_cleanup_unregister(cleanupSlot)
        let dir = Paths.split(finalPath).dir
        let dfd = open(dir, O_RDONLY)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }

    /// Copies the finished temporary file into the device or FIFO at the final name.
    private func copyThrough() throws {
        let source = open(temporaryPath, O_RDONLY | O_CLOEXEC)
        guard source >= 0 else {
            throw LookMError.output(finalPath, nil, "temporary file vanished: \(AtomicOutput.errno())")
        }
        defer {
            close(source)
            unlink(temporaryPath)
        }
        let target = open(finalPath, O_WRONLY | O_CLOEXEC)
        guard target >= 0 else { throw LookMError.output(finalPath, nil, "cannot open: \(AtomicOutput.errno())") }
        defer { close(target) }
        var s = stat()
        guard fstat(target, &s) == 0, [S_IFCHR, S_IFIFO].contains(s.st_mode & S_IFMT) else {
            throw LookMError.output(finalPath, nil, "changed into another kind of file while lookm was writing")
        }
        if case .failure(let f) = FileDescriptors.copy(from: source, to: target) {
            throw LookMError.output(finalPath, nil, "cannot write: \(f.reason)")
        }
    }

    /// Removes the temporary file; the final name is left as it was.
    func discard() {
        if !finished { unlink(temporaryPath) }
        finished = true
        lookm_cleanup_unregister(cleanupSlot)
    }

    deinit { discard() }

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

/// A text file a command saves (`--plot`), claimed before the work starts so that a name that
/// cannot be written (an input, an existing file without `--force`) fails fast, then written by
/// `AtomicOutput`'s rules.
public final class TextOutput {
    private let output: AtomicOutput

    /// Call after the run's inputs are open (`InputFile`), so they are known.
    public init(path: String, force: Bool) throws {
        output = try AtomicOutput(finalPath: path, force: force)
    }

    public func write(_ text: String) throws {
        try output.write(text)
    }
}
