#if canImport(Glibc)
    import Glibc
#endif

/// What commands print for machines and people on stdout, written and checked: a failed write
/// (`> /dev/full`) is an output error (exit 4), a closed pipe ends quietly with the same code,
/// and stdout may not be one of the run's inputs (`lookm compress d.h5 -o - 1<>d.h5`).
public enum StandardOutput {
    /// Refuses a stdout that is the same file as an input of this run (`RunInputs`).
    public static func requireNotInput() throws {
        var s = stat()
        guard fstat(1, &s) == 0, (s.st_mode & S_IFMT) == S_IFREG, let input = RunInputs.input(matching: s) else {
            return
        }
        throw LookMError.output("stdout", nil, "is the input file \(input); send the output elsewhere")
    }

    /// Writes `text` and a newline to stdout, control characters escaped (JSON output has none:
    /// its encoder escapes them).
    public static func print(_ text: String) throws {
        try requireNotInput()
        var bytes = Array(text.escapingControlCharacters.utf8)
        bytes.append(UInt8(ascii: "\n"))
        switch bytes.withUnsafeBytes({ FileDescriptors.writeAll(1, $0.baseAddress!, $0.count) }) {
        case nil: return
        case .write(EPIPE)?: throw LookMError(.output, "")  // downstream closed: quiet
        case let failure?: throw LookMError.output("stdout", nil, "cannot write: \(failure.reason)")
        }
    }
}
