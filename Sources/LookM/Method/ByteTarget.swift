import Foundation

/// `--target-bytes`: a budget in bytes of K/V memory (docs/method.md section 2), either absolute
/// (`400MiB`, `1.5GB`, `123456`) or a share of the dump's own K/V bytes (`25%`).
public enum ByteTarget: Equatable, Sendable {
    case bytes(Int)
    case share(Double)

    /// Binary units (KiB, MiB, GiB, TiB) count 1024s, decimal ones (KB, MB, GB, TB) 1000s; `B` or no
    /// unit is bytes; a trailing `%` is a share of the dump's K/V bytes.
    public static func parse(_ text: String) throws -> ByteTarget {
        let t = text.trimmingCharacters(in: .whitespaces)
        let example = "e.g. --target-bytes 400MiB, 1.5GB or 25%"
        if t.hasSuffix("%") {
            guard let p = Double(t.dropLast().trimmingCharacters(in: .whitespaces)), p.isFinite, p > 0, p <= 100 else {
                throw LookMError.usage("--target-bytes \(text): a share must be in (0, 100] %; \(example)")
            }
            return .share(p / 100)
        }
        let units: [(String, Double)] = [
            ("KiB", 1024), ("MiB", 1024 * 1024), ("GiB", 1024 * 1024 * 1024), ("TiB", 1024 * 1024 * 1024 * 1024),
            ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12), ("B", 1),
        ]
        let unit = units.first { t.lowercased().hasSuffix($0.0.lowercased()) }
        let number = unit.map { String(t.dropLast($0.0.count)).trimmingCharacters(in: .whitespaces) } ?? t
        guard let value = Double(number), value.isFinite, value > 0 else {
            throw LookMError.usage("--target-bytes \(text) is not a size; \(example)")
        }
        let bytes = (value * (unit?.1 ?? 1)).rounded(.down)
        guard bytes >= 1, bytes < 9e18 else {
            throw LookMError.usage("--target-bytes \(text) is out of range; \(example)")
        }
        return .bytes(Int(bytes))
    }

    /// The target in bytes for a dump whose K/V take `dumpBytes`.
    func bytes(ofDump dumpBytes: Int) -> Int {
        switch self {
        case .bytes(let b): return b
        case .share(let s): return Int((Double(dumpBytes) * s).rounded(.down))
        }
    }

    /// As the user wrote it, for the `method` JSON and messages.
    var description: String {
        switch self {
        case .bytes(let b): return "\(b)"
        case .share(let s): return "\(CanonicalJSON.decimal(s * 100))%"
        }
    }
}
