/// StreamingLLM: the first `sinks` positions plus the most recent ones, as many tokens in all as
/// every other method keeps (this replaces the recent rule).
struct StreamingSelector: Selector {
    static let name = "streaming"
    static let flags: Set<SelectorFlag> = [.sinks]
    var sinks = 4

    func parameters(gqa: Bool) -> [String: CanonicalJSON.Value] { ["sinks": .int(sinks)] }

    func select(_ head: HeadInput, _ context: LayerContext) throws -> [Int] {
        let n = context.hh + context.recent
        let sinks = min(self.sinks, n)
        return Array(0..<sinks) + Array((context.length - (n - sinks))..<context.length)
    }
}

extension StreamingSelector {
    init(_ flags: SelectorFlags, variant: Variant, merge: any Merge) throws {
        let sinks = flags.sinks ?? 4
        guard sinks >= 0 else { throw LookMError.usage("--sinks \(sinks): must not be negative") }
        self.init(sinks: sinks)
    }
}
