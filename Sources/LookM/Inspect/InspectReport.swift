/// What `lookm inspect` tells about a dump or a cache. Its JSON form (`--json`) is documented in
/// docs/inspect.md; keys are snake_case and stable.
public struct InspectReport: Codable, Sendable {
    public enum Kind: String, Codable, Sendable { case dump, cache }

    public struct Shape: Codable, Sendable {
        public var numLayers, numHeads, numKVHeads, headDim, seqLen: Int
        enum CodingKeys: String, CodingKey {
            case numLayers = "num_layers"
            case numHeads = "num_heads"
            case numKVHeads = "num_kv_heads"
            case headDim = "head_dim"
            case seqLen = "seq_len"
        }
    }

    public struct Tokens: Codable, Sendable {
        /// Tokens per modality name ("text", "image", ...); absent modalities are absent.
        public var counts: [String: Int]
        public var spans: [TokenTable.Span]
        public var hasSegment: Bool
        public var hasIds: Bool
        enum CodingKeys: String, CodingKey {
            case counts, spans
            case hasSegment = "has_segment"
            case hasIds = "has_ids"
        }
    }

    public struct Layer: Codable, Sendable {
        public var index: Int
        /// Datasets present (dumps): key, value, attn_score, query, window_attn, probe_query.
        public var datasets: [String]?
        public var windowRows: Int?
        /// Kept slots per kv head (caches).
        public var kept: Int?
        /// Evicted tokens merged into kept slots, summed over kv heads (caches).
        public var merged: Int?
        /// Positions no slot accounts for (`slot_of = -1`), summed over kv heads (caches).
        public var dropped: Int?
        /// Bytes of keys plus values in memory, in the file's element type.
        public var kvBytes: Int
        /// Bytes of keys plus values in the file (after the codec).
        public var kvStoredBytes: Int
        public var storage: String
        /// The model's sliding window of this layer, when the file records one.
        public var slidingWindow: Int? = nil
        /// Slots of each kv head, in a ragged layer (`kept` is then their mean, rounded down).
        public var keptPerHead: [Int]? = nil
        enum CodingKeys: String, CodingKey {
            case index, datasets, kept, merged, dropped, storage
            case windowRows = "window_rows"
            case kvBytes = "kv_bytes"
            case kvStoredBytes = "kv_stored_bytes"
            case slidingWindow = "sliding_window"
            case keptPerHead = "kept_per_head"
        }
    }

    public struct Cache: Codable, Sendable {
        /// The cache's `method` attribute, parsed (the settings that produced it).
        public var method: JSONValue
        public var source: SourceInfo
        public var lookmVersion: String
        /// How keys and values are stored, when quantised (`quantised-kv`).
        public var quant: Quant?
        enum CodingKeys: String, CodingKey {
            case method, source, quant
            case lookmVersion = "lookm_version"
        }
    }

    /// A quantised cache's scheme (docs/method.md section 12).
    public struct Quant: Codable, Sendable {
        public var scheme: String
        public var group: Int
        public var residual: Int
    }

    public var file: String
    public var kind: Kind
    public var formatVersion: Int
    /// Format-version-2 extensions the file uses (absent for version 1).
    public var extensions: [String]?
    /// The rotary position of the token after the prompt, when the file records one.
    public var nextPosition: Int?
    public var valid: Bool
    public var fileBytes: Int
    public var model: String?
    public var shape: Shape
    public var dtype: ElementType
    public var attnScale: Double?
    public var probes: Int?
    public var tokens: Tokens
    public var layers: [Layer]
    public var kvBytes: Int
    public var kvStoredBytes: Int
    public var cache: Cache?

    enum CodingKeys: String, CodingKey {
        case file, kind, valid, model, shape, dtype, probes, tokens, layers, cache, extensions
        case formatVersion = "format_version"
        case fileBytes = "file_bytes"
        case attnScale = "attn_scale"
        case nextPosition = "next_position"
        case kvBytes = "kv_bytes"
        case kvStoredBytes = "kv_stored_bytes"
    }
}

extension InspectReport {
    /// The documented JSON document of `lookm inspect --json`.
    public func json() throws -> String { try JSONOutput.encode(self) }
}
