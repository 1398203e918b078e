/// Keeps everything: only the byte codec applies.
struct FullSelector: PlainSelector {
    static let name = "full"
    func copyReason(_ context: LayerContext) -> String? { "full keeps every token" }
    func select(_ head: HeadInput, _ context: LayerContext) throws -> [Int] { Array(0..<context.length) }
}
