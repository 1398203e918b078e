/// How a layer's heavy-hitter budget is shared among its kv heads (docs/method.md section 9).
/// `uniform` (every head keeps the same count) is the default and adds nothing to the `method`
/// JSON; an allocation that gives heads different counts makes the cache's layers ragged
/// (docs/format.md, extension `ragged-heads`).
protocol HeadAllocation: Sendable {
    static var name: String { get }
    /// Heavy hitters per kv head, given each head's ranking of its old positions (the selector's
    /// `priorities`, sorted best first: the order `select` keeps in), the layer's per-head `hh` and
    /// `recent`. The counts sum to `heads * hh`.
    func heavyHitters(_ ranked: [[Priority]], hh: Int, recent: Int) -> [Int]
    var parameters: [String: CanonicalJSON.Value] { get }
}

/// Every kv head keeps the layer's `hh`.
struct UniformHeads: HeadAllocation {
    static let name = "uniform"
    var parameters: [String: CanonicalJSON.Value] { [:] }
    func heavyHitters(_ ranked: [[Priority]], hh: Int, recent: Int) -> [Int] { ranked.map { _ in hh } }
}

/// The head allocation flags as given (nil: not given).
public struct HeadAllocationFlags: Sendable {
    public var adakvFloor: Double?

    public init(adakvFloor: Double? = nil) { self.adakvFloor = adakvFloor }
}

/// Every head allocation `--head-allocation` can name. Adding one is a new file and a line here.
enum HeadAllocationRegistry {
    static let names = [UniformHeads.name, AdaKVHeads.name]

    static func make(_ name: String, _ flags: HeadAllocationFlags) throws -> any HeadAllocation {
        if name != AdaKVHeads.name && flags.adakvFloor != nil {
            throw LookMError.usage(
                "--adakv-floor applies only to --head-allocation adakv; drop it, or add --head-allocation adakv")
        }
        switch name {
        case UniformHeads.name: return UniformHeads()
        case AdaKVHeads.name: return try AdaKVHeads(flags)
        default:
            throw LookMError.usage("unknown head allocation '\(name)'; use one of \(names.joined(separator: ", "))")
        }
    }
}
