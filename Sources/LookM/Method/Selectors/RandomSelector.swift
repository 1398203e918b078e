/// `hh` old positions drawn uniformly, reproducibly from `--seed` (one stream per layer and kv head).
struct RandomSelector: Selector {
    static let name = "random"
    var parameters: Set<SelectorParameter> { [.seed] }

    func select(_ head: HeadInput, _ context: LayerContext) throws -> [Int] {
        var rng = SeededRandom(
            seed: context.settings.seed ?? 0, stream: [0x5241_4E44, UInt64(context.layer), UInt64(head.kvHead)])
        var pool = Array(0..<context.oldCount)
        let k = min(context.hh, pool.count)
        for i in 0..<k { pool.swapAt(i, rng.int(in: i..<pool.count)) }  // partial Fisher-Yates
        return pool[0..<k].sorted() + Array(recentPositions(context))
    }
}
