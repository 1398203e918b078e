import Dispatch

/// Runs `body(i)` for `i in 0..<count` on up to `threads` threads. Each index is independent work
/// whose result goes to its own place, so the outcome never depends on the thread count.
public enum Parallel {
    static func forEach(_ count: Int, threads: Int, _ body: (Int) -> Void) {
        forEach(count, threads: threads) { i, _ in body(i) }
    }

    /// As above, also passing the worker number (`0 ..< threads`), for per-worker scratch space.
    static func forEach(_ count: Int, threads: Int, _ body: (_ index: Int, _ worker: Int) -> Void) {
        let workers = max(1, min(threads, count))
        if workers == 1 {
            for i in 0..<count { body(i, 0) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let box = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                var i = w
                while i < count {
                    box.value(i, w)
                    i += workers
                }
            }
        }
    }

    /// `body(i)` for `i in 0..<count` on up to `threads` workers, results in index order; the
    /// lowest-index error wins, so failures are as deterministic as results.
    static func map<T>(_ count: Int, threads: Int, _ body: (_ index: Int, _ worker: Int) throws -> T) throws -> [T] {
        var results = [Result<T, Error>?](repeating: nil, count: count)
        results.withUnsafeMutableBufferPointer { buf in
            let out = UncheckedSendable(buf)
            forEach(count, threads: threads) { i, w in out.value[i] = Result { try body(i, w) } }
        }
        return try results.map { r in
            guard let r else { throw LookMError(.other, "internal: a parallel task produced no result") }
            return try r.get()
        }
    }

    /// The most workers a flag may ask for: far past any machine lookm runs on, and small enough
    /// that per-worker scratch space and thread stacks stay bounded.
    public static let maxThreads = 1024

    /// The worker count a `--threads`/`--jobs` flag asks for (1 ... `maxThreads`, a usage error
    /// otherwise), or the default.
    public static func workers(_ requested: Int?, flag: String) throws -> Int {
        guard let requested else { return defaultThreads }
        guard (1...maxThreads).contains(requested) else {
            throw LookMError.usage(
                "\(flag) \(requested): give 1 to \(maxThreads) (default: SLURM_CPUS_PER_TASK, else every core)")
        }
        return requested
    }

    /// Threads to use by default: `SLURM_CPUS_PER_TASK` inside a Slurm task, else every core,
    /// never more than `maxThreads` (an absurd environment value is not a reason to crash).
    public static var defaultThreads: Int {
        if let s = getenvString("SLURM_CPUS_PER_TASK"), let n = Int(s), n > 0 { return min(n, maxThreads) }
        return min(max(1, sysconfCores()), maxThreads)
    }
}

/// For handing non-Sendable values (closures, pointers) to worker threads whose accesses are
/// disjoint by construction. Use only where each thread touches its own part.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

#if canImport(Glibc)
    import Glibc
    private func getenvString(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
    private func sysconfCores() -> Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
#elseif canImport(Darwin)
    import Darwin
    private func getenvString(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
    private func sysconfCores() -> Int { Int(sysconf(_SC_NPROCESSORS_ONLN)) }
#endif
