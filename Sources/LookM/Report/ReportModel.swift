/// `lookm report` and `lookm sweep` results. The JSON forms are documented in docs/report.md and
/// versioned by `report_version`; keys are snake_case.
public let reportVersion = 1

/// The memory part of a report, from the cache alone. Derived fields are stored (set in `init`).
public struct MemoryRow: Codable, Sendable {
    public let layer: Int?
    /// Slots per kv head (mean over layers in the total row).
    public let kept: Double
    /// Kept slots per kv head holding text and non-text tokens.
    public let keptText: Double
    public let keptImage: Double
    /// Evicted tokens folded into slots, and positions accounted to no slot, over kv heads.
    public let merged: Int
    public let dropped: Int
    public let kvBytesOriginal: Int
    public let kvBytesCache: Int
    public let kvBytesDisk: Int
    public let savedPercent: Double
    public let ratio: Double

    enum CodingKeys: String, CodingKey {
        case layer, kept, merged, dropped, ratio
        case keptText = "kept_text"
        case keptImage = "kept_image"
        case kvBytesOriginal = "kv_bytes_original"
        case kvBytesCache = "kv_bytes_cache"
        case kvBytesDisk = "kv_bytes_disk"
        case savedPercent = "saved_percent"
    }
    public init(
        layer: Int?, kept: Double, keptText: Double, keptImage: Double, merged: Int, dropped: Int,
        kvBytesOriginal: Int, kvBytesCache: Int, kvBytesDisk: Int
    ) {
        self.layer = layer
        self.kept = kept
        self.keptText = keptText
        self.keptImage = keptImage
        self.merged = merged
        self.dropped = dropped
        self.kvBytesOriginal = kvBytesOriginal
        self.kvBytesCache = kvBytesCache
        self.kvBytesDisk = kvBytesDisk
        savedPercent = kvBytesOriginal == 0 ? 0 : 100 * Double(kvBytesOriginal - kvBytesCache) / Double(kvBytesOriginal)
        ratio = kvBytesCache == 0 ? 0 : Double(kvBytesOriginal) / Double(kvBytesCache)
    }

    static func total(_ rows: [MemoryRow]) -> MemoryRow {
        let n = Double(max(rows.count, 1))
        return MemoryRow(
            layer: nil, kept: rows.reduce(0) { $0 + $1.kept } / n, keptText: rows.reduce(0) { $0 + $1.keptText } / n,
            keptImage: rows.reduce(0) { $0 + $1.keptImage } / n, merged: rows.reduce(0) { $0 + $1.merged },
            dropped: rows.reduce(0) { $0 + $1.dropped }, kvBytesOriginal: rows.reduce(0) { $0 + $1.kvBytesOriginal },
            kvBytesCache: rows.reduce(0) { $0 + $1.kvBytesCache }, kvBytesDisk: rows.reduce(0) { $0 + $1.kvBytesDisk })
    }
}

/// `lookm report`.
public struct Report: Codable, Sendable {
    public var reportVersion = LookM.reportVersion
    public var cache: String
    public var reference: String?
    public var method: JSONValue
    public var seqLen: Int
    public var memory: MemoryRow
    public var layers: [MemoryRow]
    public var fidelity: FidelitySummary?
    /// The `--target-bytes` the cache was made for (its `method` records it), beside `memory`'s result.
    public var targetBytes: Int? = nil
    enum CodingKeys: String, CodingKey {
        case cache, reference, method, memory, layers, fidelity
        case reportVersion = "report_version"
        case seqLen = "seq_len"
        case targetBytes = "target_bytes"
    }
}
