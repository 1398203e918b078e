/// Chooses which positions of a layer a kv head keeps (docs/method.md section 3). A selector is a
/// value whose fields are its parameters (`SnapKVSelector(window:kernel:gqaAgg:)`); its type
/// declares the flags it takes and is registered by name in `SelectorRegistry`.
protocol Selector: Sendable {
    static var name: String { get }
    /// The selector flags it reads; any other selector flag given with it is a usage error.
    static var flags: Set<SelectorFlag> { get }
    /// The selector with `flags` (defaults where not given), validated: usage errors say what to type.
    /// `merge` is the merge it is paired with (reference rules 2 and 8 couple the two halves).
    init(_ flags: SelectorFlags, variant: Variant, merge: any Merge) throws
    /// Its parameters as they appear in the canonical `method` JSON (docs/format.md).
    func parameters(gqa: Bool) -> [String: CanonicalJSON.Value]
    /// How a kv head's scores combine its query heads' (selectors that read scores).
    var aggregation: GQAAggregation? { get }
    func need(_ context: LayerContext) -> DataNeed
    /// Why this layer is copied unchanged, or nil to compress it.
    func copyReason(_ context: LayerContext) -> String?
    /// Kept positions of one kv head, ascending.
    func select(_ head: HeadInput, _ context: LayerContext) throws -> [Int]
    /// How this selector ranks the old positions of one kv head (`0 ..< oldCount`), comparable
    /// across the heads of a layer: `select` with `hh` heavy hitters keeps the top `hh` of it (ties to
    /// the lower position). nil for selectors that do not rank (a head allocation needs a ranking).
    func priorities(_ head: HeadInput, _ context: LayerContext) -> [Priority]?
    /// Whether `priorities` gives a ranking (under the paper variant).
    static var ranks: Bool { get }
    /// Whether `select` and `priorities` read the values (`HeadInput.values`), not only the keys.
    static var readsValues: Bool { get }
}

/// A position's rank for a selector: a higher tier first (text-prior's text), then a higher score.
struct Priority: Comparable, Sendable {
    var tier: Int = 0
    var score: Double

    static func < (a: Priority, b: Priority) -> Bool { (a.tier, a.score) < (b.tier, b.score) }
}

extension Selector {
    static var flags: Set<SelectorFlag> { [] }
    static var ranks: Bool { false }
    static var readsValues: Bool { false }
    func parameters(gqa: Bool) -> [String: CanonicalJSON.Value] { [:] }
    var aggregation: GQAAggregation? { nil }
    func priorities(_ head: HeadInput, _ context: LayerContext) -> [Priority]? { nil }
    func need(_ context: LayerContext) -> DataNeed { .none }

    /// The budget rule of docs/method.md section 2, and reference rule 10 (no image: unchanged).
    func copyReason(_ context: LayerContext) -> String? {
        if context.hh + context.recent == 0 { return "the budget rounds to no token" }
        if context.length <= context.hh + context.recent { return "the prompt fits the budget" }
        if context.variant == .reference && !context.hasNonText { return "no image tokens (reference rule 10)" }
        return nil
    }

    /// The recent window, always kept.
    func recentPositions(_ context: LayerContext) -> Range<Int> { context.oldCount..<context.length }
}

/// A selector with no parameters.
protocol PlainSelector: Selector {
    init()
}

extension PlainSelector {
    init(_ flags: SelectorFlags, variant: Variant, merge: any Merge) { self.init() }
}

/// The selector flags as given on the command line (nil: not given).
public struct SelectorFlags: Sendable {
    public var gqaAgg: GQAAggregation?
    public var window: Int?
    public var kernel: Int?
    public var sinks: Int?
    public var seed: UInt64?

    public init(
        gqaAgg: GQAAggregation? = nil, window: Int? = nil, kernel: Int? = nil, sinks: Int? = nil, seed: UInt64? = nil
    ) {
        self.gqaAgg = gqaAgg
        self.window = window
        self.kernel = kernel
        self.sinks = sinks
        self.seed = seed
    }

    /// The flags given, by name.
    var given: [SelectorFlag] {
        [
            (gqaAgg != nil, SelectorFlag.gqaAgg), (window != nil, .window), (kernel != nil, .kernel),
            (sinks != nil, .sinks), (seed != nil, .seed),
        ].filter(\.0).map(\.1)
    }
}

enum SelectorFlag: String, CaseIterable, Sendable {
    case gqaAgg = "--gqa-agg"
    case window = "--window"
    case kernel = "--kernel"
    case sinks = "--sinks"
    case seed = "--seed"
}

/// Every selector `--selector` can name. Adding one is a new file and a line here
/// (docs/adding-a-method.md); `register` adds one at run time (a test target's own selector).
enum SelectorRegistry {
    nonisolated(unsafe) private static var registered: [any Selector.Type] = [
        TextPriorSelector.self, H2OSelector.self, SnapKVSelector.self, StreamingSelector.self, RandomSelector.self,
        KeyNormSelector.self, FullSelector.self, MixKVSelector.self,
    ]
    private static let lock = Lock()

    static var all: [any Selector.Type] { lock.locked { registered } }
    static var names: [String] { all.map { $0.name } }

    static func type(named name: String) -> (any Selector.Type)? {
        all.first { $0.name == name }
    }

    /// Makes `type` available by its name (once: a second registration of a name is ignored).
    static func register(_ type: any Selector.Type) {
        lock.locked {
            if !registered.contains(where: { $0.name == type.name }) { registered.append(type) }
        }
    }

    /// The selector `name` made from `flags`; a flag it does not take is a usage error naming the
    /// selectors that do.
    static func make(_ name: String, _ flags: SelectorFlags, variant: Variant, merge: any Merge) throws -> any Selector
    {
        let types = all
        guard let type = types.first(where: { $0.name == name }) else {
            throw LookMError.usage(
                "unknown selector '\(name)'; use one of \(types.map { $0.name }.joined(separator: ", "))")
        }
        for flag in flags.given where !type.flags.contains(flag) {
            let owners = types.filter { $0.flags.contains(flag) }.map { $0.name }
            let choose = owners.count == 1 ? "--selector \(owners[0])" : "one of them"
            throw LookMError.usage(
                "\(flag.rawValue) applies only to \(owners.joined(separator: ", ")), not to selector '\(name)'; drop it, or choose \(choose)"
            )
        }
        return try type.init(flags, variant: variant, merge: merge)
    }
}
