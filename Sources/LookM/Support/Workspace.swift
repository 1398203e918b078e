/// Buffers one worker thread reuses from head to head and layer to layer. Allocating them per
/// head cost a fresh mmap and page faults each time (about a fifth of the run on LLaVA shapes).
final class Workspace: @unchecked Sendable {
    private var floatBuffers: [UnsafeMutableBufferPointer<Float>] = []
    private var doubleBuffers: [UnsafeMutableBufferPointer<Double>] = []
    /// This worker's zstd compression context, made on first use.
    private(set) lazy var zstd = ZstdContext()

    /// Float buffer number `slot`, at least `count` long; contents are unspecified.
    func floats(_ slot: Int, _ count: Int) -> UnsafeMutableBufferPointer<Float> {
        Self.buffer(&floatBuffers, slot, count)
    }

    /// Double buffer number `slot` (numbered apart from `floats`), at least `count` long.
    func doubles(_ slot: Int, _ count: Int) -> UnsafeMutableBufferPointer<Double> {
        Self.buffer(&doubleBuffers, slot, count)
    }

    private static func buffer<T>(_ buffers: inout [UnsafeMutableBufferPointer<T>], _ slot: Int, _ count: Int)
        -> UnsafeMutableBufferPointer<T>
    {
        while buffers.count <= slot { buffers.append(UnsafeMutableBufferPointer(start: nil, count: 0)) }
        if buffers[slot].count < count {
            buffers[slot].deallocate()
            buffers[slot] = .allocate(capacity: max(count, 16))
        }
        return UnsafeMutableBufferPointer(rebasing: buffers[slot][0..<count])
    }

    deinit {
        for b in floatBuffers { b.deallocate() }
        for b in doubleBuffers { b.deallocate() }
    }

    /// One workspace per worker of `Parallel.forEach`.
    static func pool(_ threads: Int) -> [Workspace] { (0..<max(1, threads)).map { _ in Workspace() } }
}
