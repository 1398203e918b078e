/// `--target-bytes` (docs/method.md section 2): the largest `--keep N` whose cache K/V bytes in
/// memory, as `report` counts them, fit the target, under the method's allocations.
extension Method {
    /// This method with `--keep N` for the largest N (1 ... seq_len) whose cache fits the target:
    /// every layer is counted as compress keeps it (a layer whose prompt fits the budget is copied
    /// whole, a sliding-window layer keeps its window), head allocations keep each layer's total.
    /// Usage errors when even one token per layer is too much, or when the target is not below the
    /// dump's own K/V bytes.
    func fitted(to dump: DumpReader) throws -> Method {
        try quant?.validate(headDim: dump.shape.headDim)
        guard let target, targetBytes == nil else { return self }
        let s = dump.shape
        let storage = quant.storage(dump.elementType)
        let windows = try (0..<s.numLayers).map { i -> Int? in
            let layer = try dump.layer(i)
            return layer.slidingWindow.flatMap { _ in layer.windowStart.map { s.seqLen - $0 } }
        }
        // The dump's own K/V, unquantised: what `25%` means and what a target must be below.
        let full =
            s.numLayers
            * ElementStorage(type: dump.elementType).bytes(
                heads: s.numKVHeads, kept: s.seqLen, headDim: s.headDim)
        let goal = target.bytes(ofDump: full)
        guard goal < full else {
            throw LookMError.usage(
                "--target-bytes \(target.description) (\(Formatting.bytes(goal))) is not below the dump's own K/V bytes (\(Formatting.bytes(full))): nothing to compress; give a smaller target, or --method full"
            )
        }
        func bytes(keep n: Int) -> Int {
            var m = self
            m.budget = .keep(n)
            return (0..<s.numLayers).reduce(0) { total, i in
                let slots: Int
                if let w = windows[i] {
                    slots = w
                } else {
                    let context = LayerContext(
                        method: m, layer: i, layers: s.numLayers, modality: dump.tokens.modality, groupSize: s.groupSize
                    )
                    slots = m.selector.copyReason(context) == nil ? context.hh + context.recent : s.seqLen
                }
                return total + storage.bytes(heads: s.numKVHeads, kept: slots, headDim: s.headDim)
            }
        }
        guard let n = (1...s.seqLen).last(where: { bytes(keep: $0) <= goal }) else {
            throw LookMError.usage(
                "--target-bytes \(target.description) (\(Formatting.bytes(goal))) cannot be met: keeping one token per layer already takes \(Formatting.bytes(bytes(keep: 1))); give a larger target"
            )
        }
        var m = self
        m.budget = .keep(n)
        m.targetBytes = goal
        return m
    }
}
