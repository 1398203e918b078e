/// Buffers one worker thread reuses from head to head and layer to layer. Allocating them per
/// head cost a fresh mmap and page faults each time (about a fifth of the run on LLaVA shapes).
final class Workspace: @unchecked Sendable {
    private let floatBuffers = FloatSlot.allCases.map { _ in RawBuffer() }
    private let doubleBuffers = DoubleSlot.allCases.map { _ in RawBuffer() }
    /// Similarity's screening: the kept keys' bfloat16 pairs, and its scratch.
    private let screenWords = RawBuffer()
    private let screenScratch = RawBuffer()
    /// This worker's zstd compression context, made on first use.
    private(set) lazy var zstd = ZstdContext()

    /// The Float buffers, one meaning each across every file that uses a worker's workspace: a
    /// head's keys and values stay valid while similarities are computed from them.
    enum FloatSlot: Int, CaseIterable {
        /// Similarity: the packed normalised kept keys, a block of normalised evicted keys.
        case keptKeys, keyBlock
        /// One kv head's keys and values as Float32 (compress, sweep; report reads them as stored,
        /// except a float64 dump's).
        case headKeys, headValues
    }

    /// The Double buffers of fidelity (report, sweep).
    enum DoubleSlot: Int, CaseIterable {
        /// The measured queries, widened (keys and values are widened as the kernels read them).
        case queries
        /// Attention weights and outputs over the full prompt, and over the kept slots.
        case fullWeights, fullOutput, keptWeights, keptOutput
        /// Per query, its weights' sums by row class (lookm_recall_sums).
        case recallSums
    }

    /// Float buffer `slot`, at least `count` long; contents are unspecified.
    func floats(_ slot: FloatSlot, _ count: Int) -> UnsafeMutableBufferPointer<Float> {
        floatBuffers[slot.rawValue].elements(Float.self, count)
    }

    /// The screening's buffers (Similarity), at least `words` and `floats` long; contents unspecified.
    func screening(words: Int, floats: Int) -> (UnsafeMutableBufferPointer<UInt32>, UnsafeMutableBufferPointer<Float>) {
        (screenWords.elements(UInt32.self, words), screenScratch.elements(Float.self, floats))
    }

    /// Double buffer `slot`, at least `count` long; contents are unspecified.
    func doubles(_ slot: DoubleSlot, _ count: Int) -> UnsafeMutableBufferPointer<Double> {
        doubleBuffers[slot.rawValue].elements(Double.self, count)
    }

    /// One workspace per worker of `Parallel.forEach`.
    static func pool(_ threads: Int) -> [Workspace] { (0..<max(1, threads)).map { _ in Workspace() } }
}
