#if canImport(Glibc)
    import Glibc
#endif

/// A one-line progress display on stderr, shown only when stderr is a terminal: scripts and logs
/// never see carriage returns.
public final class Progress {
    private let label: String
    private let enabled: Bool
    private let start = ContinuousClock.now

    public init(_ label: String) {
        self.label = label
        enabled = isatty(2) == 1
    }

    public func update(_ done: Int, of total: Int) {
        guard enabled else { return }
        let seconds = (ContinuousClock.now - start).seconds
        let rate = seconds > 0 ? " (\(Formatting.fixed(Double(done) / seconds, 1))/s)" : ""
        writeStderr("\r\(label) \(done) of \(total)\(rate)\u{1B}[K")
    }

    public func finish() {
        if enabled { writeStderr("\r\u{1B}[K") }
    }
}

extension Duration {
    public var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) * 1e-18
    }
}

/// Writes one line to stderr (messages for people: summaries, warnings).
public func printError(_ line: String) {
    writeStderr(line + "\n")
}

/// Unbuffered write to file descriptor 2 (no shared `FILE *`, which Swift 6 rejects as unsafe).
func writeStderr(_ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { FileDescriptors.writeAll(2, $0.baseAddress!, $0.count) }
}
