/// `hh` old positions drawn uniformly, reproducibly from `--seed` (one stream per layer and kv head).
struct RandomSelector: Selector {
    static let name = "random"
    static let flags: Set<SelectorFlag> = [.seed]
    var seed: UInt64 = 0

    func parameters(gqa: Bool) -> [String: CanonicalJSON.Value] { ["seed": .int(Int(truncatingIfNeeded: seed))] }

    func select(_ head: HeadInput, _ context: LayerContext) throws -> [Int] {
        var rng = SeededRandom(seed: seed, stream: [0x5241_4E44, UInt64(context.layer), UInt64(head.kvHead)])
        var pool = Array(0..<context.oldCount)
        let k = min(context.hh, pool.count)
        for i in 0..<k { pool.swapAt(i, rng.int(in: i..<pool.count)) }  // partial Fisher-Yates
        return pool[0..<k].sorted() + Array(recentPositions(context))
    }
}

extension RandomSelector {
    init(_ flags: SelectorFlags, variant: Variant, merge: any Merge) {
        self.init(seed: flags.seed ?? 0)
    }
}
