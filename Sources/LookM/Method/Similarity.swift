import COpenBLAS

/// Pivots of evicted keys (method.md section 4, rule 9): the kept slot whose key has the highest
/// cosine with the evicted key, the first one on ties. Rows are normalised in Float32 (each
/// divided by its L2 norm; a zero row stays zero, so its cosine is 0 with everything and never
/// NaN), then one sgemm per block of evicted rows with the argmax taken right away, so the full
/// evicted x kept matrix never exists for long prompts.
enum Similarity {
    /// Evicted rows per GEMM block.
    static let blockRows = 256

    static func pivots(keys: UnsafeBufferPointer<Float>, headDim D: Int, kept: [Int], evicted: [Int]) -> (pivot: [Int32], cosine: [Float]) {
        let K = kept.count, E = evicted.count
        var pivot = [Int32](repeating: 0, count: E), cosine = [Float](repeating: 0, count: E)
        guard K > 0, E > 0 else { return (pivot, cosine) }
        let keptRows = normalised(keys, D, kept)
        let block = min(blockRows, E)
        var rows = [Float](repeating: 0, count: block * D)
        var sims = [Float](repeating: 0, count: block * K)
        var start = 0
        while start < E {
            let n = min(block, E - start)
            normalise(keys, D, evicted[start..<(start + n)], into: &rows)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(K), Int32(D),
                        1, rows, Int32(D), keptRows, Int32(D), 0, &sims, Int32(K))
            for i in 0..<n {
                var best = 0, bestValue = sims[i * K]
                for j in 1..<max(K, 1) where sims[i * K + j] > bestValue { best = j; bestValue = sims[i * K + j] }
                pivot[start + i] = Int32(best)
                cosine[start + i] = bestValue
            }
            start += n
        }
        return (pivot, cosine)
    }

    private static func normalised(_ keys: UnsafeBufferPointer<Float>, _ D: Int, _ positions: [Int]) -> [Float] {
        var out = [Float](repeating: 0, count: positions.count * D)
        normalise(keys, D, positions[...], into: &out)
        return out
    }

    private static func normalise(_ keys: UnsafeBufferPointer<Float>, _ D: Int, _ positions: ArraySlice<Int>, into out: inout [Float]) {
        for (r, t) in positions.enumerated() {
            var s: Float = 0
            for d in 0..<D { let x = keys[t * D + d]; s += x * x }
            let norm = s.squareRoot()
            for d in 0..<D { out[r * D + d] = norm > 0 ? keys[t * D + d] / norm : 0 }
        }
    }
}
