/// Attention-free baseline: the `hh` old positions whose key has the smallest L2 norm.
struct KeyNormSelector: PlainSelector {
    static let name = "knorm"

    func select(_ head: HeadInput, _ context: LayerContext) throws -> [Int] {
        let D = head.headDim
        // Norms in Double, negated so that the top-k of the stable order is the smallest norm
        // with ties to the lower position (a zero key ranks first).
        let negated = (0..<context.oldCount).map { t -> Double in
            var s = 0.0
            for d in 0..<D {
                let x = Double(head.keys[t * D + d])
                s += x * x
            }
            return -s.squareRoot()
        }
        return TopK.stable(negated, context.hh).sorted() + Array(recentPositions(context))
    }
}
