import COpenBLAS

#if canImport(Glibc)
    import Glibc
#endif

/// OpenBLAS runs single-threaded inside lookm: parallelism is over heads, so each GEMM has one
/// fixed summation order and results do not depend on the thread count.
enum BLAS {
    private static let configured: Bool = {
        openblas_set_num_threads(1)
        stopServerThreads()
        return true
    }()

    static func configure() { _ = configured }

    /// OpenBLAS's pthread build starts its server threads when it loads, and an idle one spins in
    /// sched_yield for about 0.1 CPU-s before it sleeps (5 % of report's samples on the 2-core VM,
    /// taken from the workers). lookm never gives them work. `blas_thread_shutdown_` is not in
    /// cblas.h and the serial and OpenMP builds may lack it, so it is looked up, and called if there.
    private static func stopServerThreads() {
        #if canImport(Glibc)
            guard let symbol = dlsym(nil, "blas_thread_shutdown_") else { return }
            typealias Shutdown = @convention(c) () -> Int32
            _ = unsafeBitCast(symbol, to: Shutdown.self)()
        #endif
    }
}
