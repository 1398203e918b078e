/// The one error type of lookm. It carries the process exit code, so every command reports failures
/// the same way: one line on stderr, and a status a calling script can branch on.
public struct LookMError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Exit statuses, stable for scripts (see README "Exit codes").
    public enum Kind: Int32, Sendable {
        /// Anything else: a bug, or a system failure outside the input and output.
        case other = 1
        /// Bad flags or flag combinations.
        case usage = 2
        /// The input file is not a valid dump or cache.
        case invalidInput = 3
        /// The output cannot be written (exists, not writable, disk full).
        case output = 4
    }

    public let kind: Kind
    /// One line: names the file and, where it applies, the HDF5 object.
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        // Keep it one line whatever a library handed us, and terminal-safe whatever a file held.
        self.message = message.split(whereSeparator: \.isNewline).joined(separator: " ").escapingControlCharacters
    }

    public var exitCode: Int32 { kind.rawValue }
    public var description: String { message }

    public static func usage(_ message: String) -> LookMError { LookMError(.usage, message) }

    /// An invalid input: `file: object: what is wrong`.
    public static func invalid(_ file: String, _ object: String?, _ what: String) -> LookMError {
        LookMError(.invalidInput, located(file, object, what))
    }

    /// An output problem: `file: object: what went wrong`.
    public static func output(_ file: String, _ object: String? = nil, _ what: String) -> LookMError {
        LookMError(.output, located(file, object, what))
    }

    static func located(_ file: String, _ object: String?, _ what: String) -> String {
        if let object, !object.isEmpty { return "\(file): \(object): \(what)" }
        return "\(file): \(what)"
    }
}
