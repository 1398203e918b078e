/// One setting of a sweep: a method users name, at a budget (`--budget`'s meaning, docs/method.md
/// section 2), resolved into the settings compress would use.
public struct SweepSetting: Sendable {
    public let method: String
    public let budget: Double
    public let settings: CompressionSettings

    public init(method: String, budget: Double, settings: CompressionSettings) {
        self.method = method
        self.budget = budget
        self.settings = settings
    }
}
