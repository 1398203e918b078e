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

enum SelectorRegistry {
    static let all: [any Selector] = [
        TextPriorSelector(), H2OSelector(), SnapKVSelector(), StreamingSelector(), RandomSelector(),
        KeyNormSelector(), FullSelector(),
    ]
    static var names: [String] { all.map { type(of: $0).name } }

    static func selector(named name: String) -> (any Selector)? {
        all.first { type(of: $0).name == name }
    }
}
