import CHDF5

/// How a writer stores tensors on disk. Every codec is lossless; shuffle precedes compression for
/// multi-byte elements, which is what lets zstd find the compressible high bytes of 16-bit floats.
public enum Codec: Equatable, Sendable, CustomStringConvertible {
    case none
    case deflate(level: Int)
    case zstd(level: Int)

    public static let names = ["zstd", "deflate", "none"]

    /// `name` as given on the command line; `level` nil means the codec's default.
    public static func parse(_ name: String, level: Int?) throws -> Codec {
        switch name {
        case "none":
            if level != nil { throw LookMError.usage("--level does not apply to --codec none; drop it") }
            return .none
        case "deflate":
            let l = level ?? 4
            guard (0...9).contains(l) else {
                throw LookMError.usage("--level \(l) is out of range for deflate; use 0...9")
            }
            return .deflate(level: l)
        case "zstd":
            let l = level ?? 3
            guard (-7...22).contains(l) else {
                throw LookMError.usage("--level \(l) is out of range for zstd; use -7...22")
            }
            return .zstd(level: l)
        default:
            throw LookMError.usage("unknown codec '\(name)'; use one of \(names.joined(separator: ", "))")
        }
    }

    public var name: String {
        switch self {
        case .none: return "none"
        case .deflate: return "deflate"
        case .zstd: return "zstd"
        }
    }

    public var level: Int? {
        switch self {
        case .none: return nil
        case .deflate(let l), .zstd(let l): return l
        }
    }

    public var description: String { level.map { "\(name) \($0)" } ?? name }

    /// Adds this codec's filters to a dataset creation property list.
    func apply(to dcpl: hid_t, elementSize: Int, site: H5Site, object: String) throws {
        if self != .none && elementSize > 1 {
            try site.check(H5Pset_shuffle(dcpl), object, "adding the shuffle filter")
        }
        switch self {
        case .none: break
        case .deflate(let l):
            try site.check(H5Pset_deflate(dcpl, UInt32(l)), object, "adding the deflate filter")
        case .zstd(let l):
            var cd = [UInt32(bitPattern: Int32(l))]
            try site.check(
                H5Pset_filter(dcpl, ZstdFilter.id, h5z_flag_mandatory(), 1, &cd), object, "adding the zstd filter")
        }
    }
}
