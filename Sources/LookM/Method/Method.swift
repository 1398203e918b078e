/// `--variant`: the clean definitions of docs/method.md (paper) or the authors' code bit for bit (reference).
public enum Variant: String, CaseIterable, Sendable {
    case paper, reference
}

/// How a kv head's score aggregates its query heads under grouped-query attention.
public enum GQAAggregation: String, CaseIterable, Sendable {
    case mean, max, sum
}

/// One compression method, resolved: a selector value and a merge value (each with its own
/// parameters), the budget, how it is spread over the layers, and the variant.
/// `Method.resolve` makes one from the command line.
public struct Method: Sendable {
    let selector: any Selector
    let merge: any Merge
    public let variant: Variant
    public internal(set) var budget: Budget
    let allocation: any LayerAllocation
    /// `--recent N`: the recent window of every layer is `min(N, kept)` instead of half the budget.
    public let recent: Int?
    let headAllocation: any HeadAllocation
    /// `--target-bytes` as given, and once `fitted` to a dump, the bytes it resolved to.
    public internal(set) var target: ByteTarget?
    public internal(set) var targetBytes: Int?
    /// `--quant`: how the kept slots are stored (nil: in the dump's element type).
    public internal(set) var quant: QuantScheme?

    init(
        selector: any Selector, merge: any Merge, variant: Variant = .paper, budget: Budget = .paperDefault,
        allocation: any LayerAllocation = UniformAllocation(), recent: Int? = nil,
        headAllocation: any HeadAllocation = UniformHeads(), target: ByteTarget? = nil
    ) {
        self.target = target
        self.selector = selector
        self.merge = merge
        self.variant = variant
        self.budget = budget
        self.allocation = allocation
        self.recent = recent
        self.headAllocation = headAllocation
    }

    /// Whether kv heads of a layer may keep different counts (the cache's `ragged-heads` layout).
    public var raggedHeads: Bool { !(headAllocation is UniformHeads) }

    public var allocationName: String { type(of: allocation).name }

    /// Heavy hitters and recent tokens of layer `layer` of `layers` (docs/method.md sections 2 and 8):
    /// the budget's own split under `uniform`, else the allocation's count split 1:1; with
    /// `--recent N` the recent window is N tokens (at most the layer's count) and the rest heavy hitters.
    func split(layer: Int, layers: Int, length: Int) -> (hh: Int, recent: Int) {
        let split =
            allocation is UniformAllocation
            ? budget.split(length: length)
            : Budget.keep(allocation.keep(layer: layer, layers: layers, length: length, budget: budget))
                .split(length: length)
        guard let recent else { return split }
        let n = split.hh + split.recent
        return (n - min(recent, n), min(recent, n))
    }

    public var selectorName: String { type(of: selector).name }
    public var mergeName: String { type(of: merge).name }

    /// The docs/method.md section 5 name of this selector and merge, if they form one.
    public var name: String? {
        Self.named.first { $0.selector == selectorName && $0.merge == mergeName }?.name
    }

    /// Methods users name (docs/method.md section 5): selector and merge.
    public static let named: [(name: String, selector: String, merge: String)] = [
        ("lookm", "text-prior", "pivot"), ("lookm-avg", "text-prior", "avg"),
        ("lookm-weighted", "text-prior", "weighted"),
        ("text-prior", "text-prior", "none"), ("h2o", "h2o", "none"), ("snapkv", "snapkv", "none"),
        ("streaming", "streaming", "none"), ("random", "random", "none"), ("knorm", "knorm", "none"),
        ("full", "full", "none"), ("mixkv", "mixkv", "none"),
    ]

    /// Combinations the authors' code has (`--variant reference`).
    static let referencePairs: Set<[String]> = [
        ["text-prior", "pivot"], ["text-prior", "avg"], ["text-prior", "weighted"], ["text-prior", "none"],
        ["h2o", "pivot"], ["h2o", "avg"], ["h2o", "weighted"], ["h2o", "none"], ["snapkv", "none"],
    ]

    /// The `method` attribute (docs/format.md): canonical JSON of everything that shaped the cache,
    /// the codec it is stored with included. `gqa` says whether the dump groups query heads (only
    /// then does `gqa_agg` matter).
    public func canonicalJSON(gqa: Bool, codec: Codec) -> String {
        var o = selector.parameters(gqa: gqa)
        o["selector"] = .string(selectorName)
        o["merge"] = .string(mergeName)
        o["variant"] = .string(variant.rawValue)
        if let name { o["method"] = .string(name) }
        o.merge(budget.parameters) { _, b in b }
        o.merge(allocation.parameters) { _, a in a }
        if let recent { o["recent"] = .int(recent) }
        if let targetBytes { o["target_bytes"] = .int(targetBytes) }
        if case .share(let s)? = target { o["target_share"] = .ratio(s) }
        o.merge(headAllocation.parameters) { _, h in h }
        if let quant {
            o["quant"] = .string(quant.name)
            o["quant_group"] = .int(quant.group)
            o["quant_residual"] = .int(quant.residual)
        }
        o["codec"] = .string(codec.name)
        if let level = codec.level { o["level"] = .int(level) }
        return CanonicalJSON.encode(o)
    }
}
