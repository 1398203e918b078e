/// What `lookm compress` did, per layer: the facts of the summary line, and its `--json` document
/// (documented in docs/compress.md; keys snake_case and stable).
public struct CompressSummary: Codable, Sendable {
    public struct Layer: Codable, Sendable {
        public var index: Int
        /// Slots per kv head.
        public var kept: Int
        /// Why the layer was copied unchanged, if it was.
        public var copied: String?
        /// Evicted tokens folded into slots, summed over kv heads.
        public var merged: Int
        /// Positions no slot accounts for, summed over kv heads.
        public var dropped: Int
        public var kvBytesIn: Int
        public var kvBytesOut: Int
        /// Slots of each kv head, when they differ (a head allocation; `kept` is then their mean).
        public var keptPerHead: [Int]? = nil
        enum CodingKeys: String, CodingKey {
            case index, kept, copied, merged, dropped
            case kvBytesIn = "kv_bytes_in"
            case kvBytesOut = "kv_bytes_out"
            case keptPerHead = "kept_per_head"
        }
    }

    public var input: String
    public var output: String
    /// The `method` attribute written into the cache (canonical JSON), parsed.
    public var method: JSONValue
    public var seqLen: Int
    public var layers: [Layer]
    public var kvBytesIn: Int
    public var kvBytesOut: Int
    public var fileBytes: Int
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case input, output, method, layers, seconds
        case seqLen = "seq_len"
        case kvBytesIn = "kv_bytes_in"
        case kvBytesOut = "kv_bytes_out"
        case fileBytes = "file_bytes"
    }

    public func json() throws -> String { try JSONOutput.encode(self) }

    /// The one line for people: kept tokens per layer range, bytes before and after, time.
    public var line: String {
        let kept = Formatting.runs(layers.map { [String($0.kept), $0.copied ?? ""] }).map { range, v in
            let copied = v[1].isEmpty ? "" : " (copied: \(v[1]))"
            return "\(Formatting.layers(range)) \(v[0])/\(seqLen)\(copied)"
        }.joined(separator: ", ")
        // A quantised cache says so: with --method full, every token is kept and only quantised.
        var stored = ""
        if case .object(let o) = method, case .string(let q)? = o["quant"] { stored = "as \(q) " }
        return
            "lookm: \(output): kept \(kept); K/V \(Formatting.bytes(kvBytesIn)) -> \(Formatting.bytes(kvBytesOut)) \(stored)"
            + "(\(Formatting.percent(kvBytesIn - kvBytesOut, of: kvBytesIn)) saved), file \(Formatting.bytes(fileBytes)), \(seconds.formatted(2)) s"
    }
}
