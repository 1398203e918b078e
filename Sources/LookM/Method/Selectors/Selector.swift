/// Chooses which positions of a layer a kv head keeps (docs/method.md section 3). One type per
/// selector, registered by name in `SelectorRegistry`.
protocol Selector: Sendable {
    static var name: String { get }
    /// Flags this selector reads; any other selector-specific flag is a usage error.
    var parameters: Set<SelectorParameter> { get }
    func need(_ context: LayerContext) -> DataNeed
    /// Why this layer is copied unchanged, or nil to compress it.
    func copyReason(_ context: LayerContext) -> String?
    /// Kept positions of one kv head, ascending.
    func select(_ head: HeadInput, _ context: LayerContext) throws -> [Int]
}

extension Selector {
    var parameters: Set<SelectorParameter> { [] }
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

/// Every selector `--selector` can name. Adding one is a new file and a line here
/// (docs/adding-a-method.md); `register` adds one at run time (a test target's own selector).
enum SelectorRegistry {
    nonisolated(unsafe) private static var registered: [any Selector] = [
        TextPriorSelector(), H2OSelector(), SnapKVSelector(), StreamingSelector(), RandomSelector(),
        KeyNormSelector(), FullSelector(),
    ]
    private static let lock = Lock()

    static var all: [any Selector] { lock.locked { registered } }
    static var names: [String] { all.map { type(of: $0).name } }

    static func selector(named name: String) -> (any Selector)? {
        all.first { type(of: $0).name == name }
    }

    /// Makes `selector` available by its name (once: a second registration of a name is ignored).
    static func register(_ selector: any Selector) {
        lock.locked {
            if !registered.contains(where: { type(of: $0).name == type(of: selector).name }) {
                registered.append(selector)
            }
        }
    }
}
