import CTopK

/// Top-k selection, the two ways docs/method.md needs it.
enum TopK {
    /// The `k` largest, ties to the lower index (paper variant): positions in rank order.
    static func stable(_ values: [Double], _ k: Int) -> [Int] {
        let k = max(0, min(k, values.count))
        guard k > 0 else { return [] }
        var out = [Int64](repeating: 0, count: k)
        lookm_topk_stable(values, Int64(values.count), Int64(k), &out)
        return out.map(Int.init)
    }

    /// PyTorch's CPU `torch.topk` on float32, ties in libstdc++'s order (reference variant, rule 7).
    static func torch(_ values: [Float], _ k: Int) -> [Int] {
        let k = max(0, min(k, values.count))
        guard k > 0 else { return [] }
        var out = [Int64](repeating: 0, count: k)
        lookm_torch_topk(values, Int64(values.count), Int64(k), &out)
        return out.map(Int.init)
    }
}
