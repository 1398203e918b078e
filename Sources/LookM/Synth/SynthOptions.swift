/// What `lookm synth` generates. Defaults make a small LLaVA-like prompt that builds in well under
/// a second; benchmarks ask for LLaVA-1.5-7B's shape explicitly.
public struct SynthOptions: Sendable {
    public var layers = 4
    public var heads = 8
    /// Key/value heads; nil means `heads` (no grouped-query attention).
    public var kvHeads: Int? = nil
    public var headDim = 64
    public var images = 2
    public var imageTokens = 144
    public var textTokens = 160
    public var dtype: ElementType = .float16
    public var seed: UInt64 = 0
    /// Store `/layers/i/query`.
    public var storeQuery = false
    /// Number of probe queries to store (`probe_query`, `/probe/position`); 0 stores none.
    public var probes = 0
    /// Rows of `window_attn` to store; 0 stores none.
    public var window = 0
    public var codec: Codec = .none
    public var model = "synthetic"

    public init() {}

    public var seqLen: Int { images * imageTokens + textTokens }
    public var resolvedKVHeads: Int { kvHeads ?? heads }

    /// Usage errors for shapes that cannot make a valid dump.
    public func validate() throws {
        func positive(_ v: Int, _ flag: String) throws {
            guard v >= 1 else { throw LookMError.usage("\(flag) \(v): must be at least 1") }
        }
        func nonNegative(_ v: Int, _ flag: String) throws {
            guard v >= 0 else { throw LookMError.usage("\(flag) \(v): must not be negative") }
        }
        try positive(layers, "--layers")
        try positive(heads, "--heads")
        try positive(resolvedKVHeads, "--kv-heads")
        try positive(headDim, "--head-dim")
        try nonNegative(images, "--images")
        try nonNegative(imageTokens, "--image-tokens")
        try nonNegative(textTokens, "--text-tokens")
        try nonNegative(probes, "--probes")
        try nonNegative(window, "--window")
        guard heads % resolvedKVHeads == 0 else {
            throw LookMError.usage("--heads \(heads) is not a multiple of --kv-heads \(resolvedKVHeads)")
        }
        guard seqLen >= 1 else {
            throw LookMError.usage("the prompt is empty: give --text-tokens or --images with --image-tokens")
        }
        guard images == 0 || imageTokens >= 1 else {
            throw LookMError.usage("--images \(images) needs --image-tokens of at least 1")
        }
        guard window <= seqLen else { throw LookMError.usage("--window \(window) exceeds the prompt length \(seqLen)") }
        guard dtype != .float64 else {
            throw LookMError.usage(
                "--dtype float64 is not a tensor type of the format; use float16, bfloat16 or float32")
        }
        let elements = layers.multipliedReportingOverflow(by: seqLen * max(heads, 1) * headDim)
        guard !elements.overflow, elements.partialValue < 1 << 40 else {
            throw LookMError.usage("that dump would hold over 2^40 elements; choose a smaller shape")
        }
    }
}
