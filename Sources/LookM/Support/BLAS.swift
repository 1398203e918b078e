import COpenBLAS

/// OpenBLAS runs single-threaded inside lookm: parallelism is over heads, so each GEMM has one
/// fixed summation order and results do not depend on the thread count.
enum BLAS {
    private static let configured: Bool = {
        openblas_set_num_threads(1)
        return true
    }()

    static func configure() { _ = configured }
}
