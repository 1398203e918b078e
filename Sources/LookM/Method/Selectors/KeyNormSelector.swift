/// Attention-free baseline: the `hh` old positions whose key has the smallest L2 norm.
struct KeyNormSelector: PlainSelector {
    static let name = "knorm"
    static let ranks = true

    func select(_ head: HeadInput, _ context: LayerContext) throws -> [Int] {
        TopK.stable(negatedNorms(head, context), context.hh).sorted() + Array(recentPositions(context))
    }

    func priorities(_ head: HeadInput, _ context: LayerContext) -> [Priority]? {
        negatedNorms(head, context).map { Priority(score: $0) }
    }

    /// Norms in Double, negated so that the top-k of the stable order is the smallest norm with
    /// ties to the lower position (a zero key ranks first).
    private func negatedNorms(_ head: HeadInput, _ context: LayerContext) -> [Double] {
        let D = head.headDim
        return (0..<context.oldCount).map { t -> Double in
            var s = 0.0
            for d in 0..<D {
                let x = Double(head.keys[t * D + d])
                s += x * x
            }
            return -s.squareRoot()
        }
    }
}
