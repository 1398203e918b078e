/// How a method's budget is spread over the layers (docs/method.md section 8). An allocation is a
/// value whose fields are its parameters; `uniform` (every layer keeps what the budget says) is
/// the default and adds nothing to the canonical `method` JSON.
protocol LayerAllocation: Sendable {
    static var name: String { get }
    /// Tokens layer `layer` of `layers` keeps of a `length`-token prompt under `budget`
    /// (a `.fraction` or `.keep` budget: `Method.resolve` refuses the ratio form).
    func keep(layer: Int, layers: Int, length: Int, budget: Budget) -> Int
    /// Its fields in the canonical `method` JSON.
    var parameters: [String: CanonicalJSON.Value] { get }
}

/// Every layer keeps what the budget says: LOOK-M's setting, and lookm's default.
struct UniformAllocation: LayerAllocation {
    static let name = "uniform"
    var parameters: [String: CanonicalJSON.Value] { [:] }

    func keep(layer: Int, layers: Int, length: Int, budget: Budget) -> Int {
        let (hh, recent) = budget.split(length: length)
        return hh + recent
    }
}

/// The allocation flags as given (nil: not given).
public struct AllocationFlags: Sendable {
    public var pyramidBeta: Int?
    public var pyramidWindow: Int?

    public init(pyramidBeta: Int? = nil, pyramidWindow: Int? = nil) {
        self.pyramidBeta = pyramidBeta
        self.pyramidWindow = pyramidWindow
    }
}

/// Every allocation `--allocation` can name. Adding one is a new file and a line here.
enum AllocationRegistry {
    static let names = [UniformAllocation.name, PyramidAllocation.name]

    static func make(_ name: String, _ flags: AllocationFlags) throws -> any LayerAllocation {
        if name != PyramidAllocation.name && (flags.pyramidBeta != nil || flags.pyramidWindow != nil) {
            throw LookMError.usage(
                "--pyramid-beta and --pyramid-window apply only to --allocation pyramid; drop them, or add --allocation pyramid"
            )
        }
        switch name {
        case UniformAllocation.name: return UniformAllocation()
        case PyramidAllocation.name: return try PyramidAllocation(flags)
        default:
            throw LookMError.usage("unknown allocation '\(name)'; use one of \(names.joined(separator: ", "))")
        }
    }
}
