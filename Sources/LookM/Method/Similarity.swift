import CKernels

/// Pivots of evicted keys (docs/method.md section 4, rule 9): the kept slot whose key has the highest
/// cosine with the evicted key, the first one on ties. Rows are normalised in Float32 (each
/// divided by its L2 norm; a zero row stays zero, so its cosine is 0 with everything and never
/// NaN). The kept keys are packed once per head and each block of evicted rows goes through
/// `lookm_pivots`, which keeps the running argmax in registers: the evicted x kept matrix of cosines
/// never exists. `Sources/CKernels/similarity.c` fixes the summation order. On CPUs with AVX512_BF16,
/// `lookm_pivots_screened` (screen.c) gives the same bits, recomputing exactly only the slots that a
/// bfloat16 estimate cannot rule out.
enum Similarity {
    /// Evicted rows normalised per call of the kernel.
    static let blockRows = 252

    static func pivots(
        keys: UnsafeBufferPointer<Float>, headDim D: Int, kept: [Int], evicted: [Int],
        workspace: Workspace = Workspace()
    ) -> (pivot: [Int32], cosine: [Float]) {
        let K = kept.count
        let E = evicted.count
        var pivot = [Int32](repeating: 0, count: E)
        var cosine = [Float](repeating: 0, count: E)
        guard K > 0, E > 0, let base = keys.baseAddress else { return (pivot, cosine) }
        let block = min(blockRows, E)
        let panel = workspace.floats(.keptKeys, lookm_pivot_panel_floats(K, D))
        let rows = workspace.floats(.keyBlock, block * D)
        kept.map(Int64.init).withUnsafeBufferPointer {
            lookm_pack_pivot_panel(base, $0.baseAddress, K, D, panel.baseAddress)
        }
        let evictedIndex = evicted.map(Int64.init)
        var screen: (words: UnsafeMutableBufferPointer<UInt32>, scratch: UnsafeMutableBufferPointer<Float>)?
        var bounds = [Double](repeating: 0, count: 3)
        if lookm_pivot_kernel_level() == 3 {
            let buffers = workspace.screening(
                words: lookm_screen_panel_words(K, D), floats: lookm_screen_scratch_floats(K, D))
            lookm_pack_screen_panel(panel.baseAddress, K, D, buffers.0.baseAddress, &bounds)
            screen = buffers
        }
        var start = 0
        while start < E {
            let n = min(block, E - start)
            evictedIndex.withUnsafeBufferPointer {
                lookm_normalise_rows(base, $0.baseAddress! + start, n, D, rows.baseAddress)
            }
            pivot.withUnsafeMutableBufferPointer { p in
                cosine.withUnsafeMutableBufferPointer { c in
                    if let screen,
                        lookm_pivots_screened(
                            panel.baseAddress, screen.words.baseAddress, bounds, K, D, rows.baseAddress, n,
                            p.baseAddress! + start, c.baseAddress! + start, screen.scratch.baseAddress) != 0
                    {
                        return
                    }
                    lookm_pivots(
                        panel.baseAddress, K, D, rows.baseAddress, n, p.baseAddress! + start, c.baseAddress! + start)
                }
            }
            start += n
        }
        return (pivot, cosine)
    }
}
