import CKernels
import COpenBLAS

/// Pivots of evicted keys (docs/method.md section 4, rule 9): the kept slot whose key has the highest
/// cosine with the evicted key, the first one on ties. Rows are normalised in Float32 (each
/// divided by its L2 norm; a zero row stays zero, so its cosine is 0 with everything and never
/// NaN), then one sgemm per block of evicted rows with the argmax taken right away, so the full
/// evicted x kept matrix never exists for long prompts.
enum Similarity {
    /// Evicted rows per GEMM block.
    static let blockRows = 256

    static func pivots(
        keys: UnsafeBufferPointer<Float>, headDim D: Int, kept: [Int], evicted: [Int],
        workspace: Workspace = Workspace()
    ) -> (pivot: [Int32], cosine: [Float]) {
        let K = kept.count
        let E = evicted.count
        var pivot = [Int32](repeating: 0, count: E)
        var cosine = [Float](repeating: 0, count: E)
        guard K > 0, E > 0 else { return (pivot, cosine) }
        let block = min(blockRows, E)
        let keptRows = workspace.floats(.keptKeys, K * D)
        let rows = workspace.floats(.keyBlock, block * D)
        let sims = workspace.floats(.similarities, block * K)
        let keptIndex = kept.map(Int64.init)
        let evictedIndex = evicted.map(Int64.init)
        lookm_normalise_rows(keys.baseAddress!, keptIndex, K, D, keptRows.baseAddress!)
        var start = 0
        while start < E {
            let n = min(block, E - start)
            evictedIndex.withUnsafeBufferPointer {
                lookm_normalise_rows(keys.baseAddress!, $0.baseAddress! + start, n, D, rows.baseAddress!)
            }
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(K), Int32(D),
                1, rows.baseAddress, Int32(D), keptRows.baseAddress, Int32(D), 0, sims.baseAddress, Int32(K))
            pivot.withUnsafeMutableBufferPointer { p in
                cosine.withUnsafeMutableBufferPointer { c in
                    lookm_argmax_rows(sims.baseAddress!, n, K, p.baseAddress! + start, c.baseAddress! + start)
                }
            }
            start += n
        }
        return (pivot, cosine)
    }
}
