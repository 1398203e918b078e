/// StreamingLLM: the first `sinks` positions plus the most recent ones, as many tokens in all as
/// every other method keeps (this replaces the recent rule).
struct StreamingSelector: Selector {
    static let name = "streaming"
    var parameters: Set<SelectorParameter> { [.sinks] }

    func select(_ head: HeadInput, _ context: LayerContext) throws -> [Int] {
        let n = context.hh + context.recent
        let sinks = min(context.settings.sinks ?? 4, n)
        return Array(0..<sinks) + Array((context.length - (n - sinks))..<context.length)
    }
}
