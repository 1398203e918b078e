/// Score arithmetic shared by the selectors (docs/method.md section 1).
enum Scores {
    /// Aggregates a kv head's query-head vectors: mean and sum in Double (so the order of the
    /// query heads cannot change the rounding), max exactly.
    static func aggregate(_ perQueryHead: [[Double]], _ how: GQAAggregation) -> [Double] {
        guard let first = perQueryHead.first else { return [] }
        if perQueryHead.count == 1 { return first }
        var out = first
        for v in perQueryHead.dropFirst() {
            for i in out.indices {
                switch how {
                case .max: out[i] = Swift.max(out[i], v[i])
                case .mean, .sum: out[i] += v[i]
                }
            }
        }
        if how == .mean {
            let n = Double(perQueryHead.count)
            for i in out.indices { out[i] /= n }
        }
        return out
    }

    /// A kv head's score from its query heads' Float32 scores, rounded once to Float32.
    static func aggregate(_ perQueryHead: [[Float]], _ how: GQAAggregation) -> [Float] {
        if perQueryHead.count == 1 { return perQueryHead[0] }
        return aggregate(perQueryHead.map { $0.map(Double.init) }, how).map { Float($0) }
    }
}
