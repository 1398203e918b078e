import Foundation

/// One line of `DIR/results/<I>-of-<N>.<host>.<pid>.jsonl`: what happened to one dump in one run.
/// Keys are snake_case and stable (docs/batch.md). For a dump with several records (reruns, other
/// shard counts) the latest `time` counts.
public struct BatchRecord: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable { case ok, skipped, failed }

    /// `compress` or `sweep`.
    public var command: String
    /// Absolute path of the dump.
    public var dump: String
    /// Absolute path of the output (`<stem>.lookm.h5` or `<stem>.sweep.json`).
    public var output: String
    public var status: Status
    /// Why it failed (the one-line message lookm prints), or why an output was redone.
    public var error: String?
    /// The exit code a single run on this dump would have had (0 unless failed).
    public var exitCode: Int32
    /// Slots kept, summed over layers (compress), and the prompt's tokens times layers.
    public var kept: Int?
    public var tokens: Int?
    public var kvBytesIn: Int?
    public var kvBytesOut: Int?
    public var fileBytes: Int?
    public var seconds: Double
    /// UTC, ISO 8601 with milliseconds: when the dump finished.
    public var time: String
    public var shard: String
    public var host: String
    public var pid: Int32

    enum CodingKeys: String, CodingKey {
        case command, dump, output, status, error, kept, tokens, seconds, time, shard, host, pid
        case exitCode = "exit_code"
        case kvBytesIn = "kv_bytes_in"
        case kvBytesOut = "kv_bytes_out"
        case fileBytes = "file_bytes"
    }

    /// One compact line, keys sorted (JSONL).
    public func line() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    static func now() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date())
    }
}

/// The results file of one worker process. One writer per file (host and pid are in its name), and
/// each record is one `write` of a whole line followed by `fsync`, so a worker killed at any point
/// leaves complete lines only, and nothing interleaves on a shared file system.
final class ResultLog {
    let path: String
    private let fd: Int32

    init(outDir: String, shard: Shard) throws {
        let dir = outDir + "/results"
        try Directories.make(dir)
        path = "\(dir)/\(shard.fileTag).\(AtomicOutput.hostName()).\(getpid()).jsonl"
        // Appended to, never replaced; and never through a link or into anything but a regular file.
        let opened = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard opened >= 0 else {
            throw LookMError.output(path, nil, "cannot create the results file: \(String(cString: strerror(errno)))")
        }
        var s = stat()
        guard fstat(opened, &s) == 0, (s.st_mode & S_IFMT) == S_IFREG, RunInputs.input(matching: s) == nil else {
            close(opened)
            throw LookMError.output(
                path, nil, "is not a results file lookm can append to (another kind of file, or an input)")
        }
        fd = opened
    }

    func append(_ record: BatchRecord) throws {
        let bytes = Array((try record.line() + "\n").utf8)
        if let f = bytes.withUnsafeBytes({ FileDescriptors.writeAll(fd, $0.baseAddress!, $0.count) }) {
            throw LookMError.output(path, nil, "cannot append a result: \(f.reason)")
        }
        _ = fsync(fd)
    }

    deinit { close(fd) }

    /// Every record under `DIR/results`, in file-name then line order. Lines that do not parse
    /// (a file of some other tool) are reported, not fatal.
    static func readAll(outDir: String) throws -> (records: [BatchRecord], unreadable: [String]) {
        let dir = outDir + "/results"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return ([], []) }
        var records: [BatchRecord] = []
        var unreadable: [String] = []
        let decoder = JSONDecoder()
        for name in names.sorted() where name.hasSuffix(".jsonl") {
            guard let data = FileManager.default.contents(atPath: "\(dir)/\(name)") else {
                unreadable.append("\(dir)/\(name)")
                continue
            }
            for (n, line) in data.split(separator: UInt8(ascii: "\n")).enumerated() where !line.isEmpty {
                if let r = try? decoder.decode(BatchRecord.self, from: Data(line)) {
                    records.append(r)
                } else {
                    unreadable.append("\(dir)/\(name):\(n + 1)")
                }
            }
        }
        return (records, unreadable)
    }
}
