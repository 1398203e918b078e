/// Buffers one worker thread reuses from head to head and layer to layer. Allocating them per
/// head cost a fresh mmap and page faults each time (about a fifth of the run on LLaVA shapes).
final class Workspace: @unchecked Sendable {
    private var buffers: [UnsafeMutableBufferPointer<Float>] = []

    /// Buffer number `slot`, at least `count` floats; contents are unspecified.
    func floats(_ slot: Int, _ count: Int) -> UnsafeMutableBufferPointer<Float> {
        while buffers.count <= slot { buffers.append(UnsafeMutableBufferPointer(start: nil, count: 0)) }
        if buffers[slot].count < count {
            buffers[slot].deallocate()
            buffers[slot] = .allocate(capacity: max(count, 16))
        }
        return UnsafeMutableBufferPointer(rebasing: buffers[slot][0..<count])
    }

    private var doubleBuffers: [UnsafeMutableBufferPointer<Double>] = []

    /// Double buffer number `slot` (a separate numbering from `floats`), at least `count` long.
    func doubles(_ slot: Int, _ count: Int) -> UnsafeMutableBufferPointer<Double> {
        while doubleBuffers.count <= slot { doubleBuffers.append(UnsafeMutableBufferPointer(start: nil, count: 0)) }
        if doubleBuffers[slot].count < count {
            doubleBuffers[slot].deallocate()
            doubleBuffers[slot] = .allocate(capacity: max(count, 16))
        }
        return UnsafeMutableBufferPointer(rebasing: doubleBuffers[slot][0..<count])
    }

    deinit {
        for b in buffers { b.deallocate() }
        for b in doubleBuffers { b.deallocate() }
    }

    /// One workspace per worker of `Parallel.forEach`.
    static func pool(_ threads: Int) -> [Workspace] { (0..<max(1, threads)).map { _ in Workspace() } }
}
