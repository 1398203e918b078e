import CKernels
import COpenBLAS

/// Exact prefill attention of one query head from its queries and keys, blocked over query rows so
/// the `L x L` matrix never exists: accumulated attention (the H2O / LOOK-M score: for every key
/// position, the sum over query rows of the causal softmax it received) and, optionally, the
/// softmax rows of the last `window` queries (SnapKV's observation window).
///
/// Arithmetic (docs/method.md, paper variant): logits `scale * q.k` by sgemm in Float32, a max-subtracted
/// softmax per row in Float32, column sums in Double rounded once to Float32.
struct CausalAttention {
    let length: Int
    let headDim: Int
    let scale: Float
    /// Query rows per GEMM; the logits block holds `blockRows x length` floats.
    var blockRows = 128

    init(length: Int, headDim: Int, scale: Float) {
        self.length = length
        self.headDim = headDim
        self.scale = scale
    }

    /// - Parameters:
    ///   - query, key: `length x headDim`, row-major.
    ///   - scores: receives `length` accumulated scores.
    ///   - window: if non-nil, receives the last `windowRows` softmax rows, `windowRows x length`,
    ///     zero right of the diagonal.
    func run(
        query: UnsafePointer<Float>, key: UnsafePointer<Float>, scores: UnsafeMutablePointer<Float>,
        window: UnsafeMutablePointer<Float>? = nil, windowRows: Int = 0
    ) {
        let L = length
        let D = headDim
        guard L > 0 else { return }
        let rowsPerBlock = max(1, min(blockRows, L))
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: rowsPerBlock * L)
        let probs = UnsafeMutablePointer<Float>.allocate(capacity: L)
        let sums = UnsafeMutablePointer<Double>.allocate(capacity: L)
        defer {
            logits.deallocate()
            probs.deallocate()
            sums.deallocate()
        }
        sums.initialize(repeating: 0, count: L)
        let firstWindowRow = L - windowRows
        if let window { window.initialize(repeating: 0, count: windowRows * L) }

        var r0 = 0
        while r0 < L {
            let rows = min(rowsPerBlock, L - r0)
            let cols = r0 + rows  // causal: this block sees keys 0 ..< cols
            // logits[rows x cols] = scale * Q[r0 ..< r0+rows] . K[0 ..< cols]^T
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(cols), Int32(D),
                scale, query + r0 * D, Int32(D), key, Int32(D), 0, logits, Int32(cols))
            for i in 0..<rows {
                let q = r0 + i
                let n = q + 1
                lookm_softmax_row_accumulate(logits + i * cols, n, sums, probs)
                if let window, q >= firstWindowRow {
                    (window + (q - firstWindowRow) * L).update(from: probs, count: n)
                }
            }
            r0 += rows
        }
        for t in 0..<L { scores[t] = Float(sums[t]) }
    }

    /// Softmax rows of the last `rows` queries only (SnapKV's window without `window_attn`):
    /// `rows x length`, zero right of the diagonal. Costs `rows x length x headDim`, not `length^2`.
    func lastRows(
        query: UnsafePointer<Float>, key: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>
    ) {
        let L = length
        let D = headDim
        let W = min(rows, L)
        guard W > 0 else { return }
        let first = L - W
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(W), Int32(L), Int32(D),
            scale, query + first * D, Int32(D), key, Int32(D), 0, out, Int32(L))
        let probs = UnsafeMutablePointer<Float>.allocate(capacity: L)
        let sink = UnsafeMutablePointer<Double>.allocate(capacity: L)
        defer {
            probs.deallocate()
            sink.deallocate()
        }
        for i in 0..<W {
            let n = first + i + 1
            sink.initialize(repeating: 0, count: n)
            lookm_softmax_row_accumulate(out + i * L, n, sink, probs)
            (out + i * L).update(from: probs, count: n)
            (out + i * L + n).initialize(repeating: 0, count: L - n)
        }
    }
}
