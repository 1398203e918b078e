/// One setting of a sweep: a method users name, at a budget (`--budget`'s meaning, docs/method.md
/// section 2), resolved into the method compress would run.
public struct SweepSetting: Sendable {
    public let name: String
    public let budget: Double
    public let method: Method

    public init(name: String, budget: Double, method: Method) {
        self.name = name
        self.budget = budget
        self.method = method
    }

    /// Sweeps store what they measure in memory; `--keep-caches` writes with zstd level 3, and
    /// the canonical JSON batch mode compares names that codec.
    static let codec = Codec.zstd(level: 3)

    func canonicalJSON(_ shape: ModelShape) -> String {
        method.canonicalJSON(gqa: shape.numKVHeads != shape.numHeads, codec: Self.codec)
    }
}
