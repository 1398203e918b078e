/// Names fixed by docs/format.md, in one place.
enum Layout {
    static let dumpFormat = "lookm-kv-dump"
    static let cacheFormat = "lookm-kv-cache"
    /// The version lookm writes when a file uses no extension (`FormatHeader.writing`).
    static let version = 1

    static let modality = "/tokens/modality"
    static let segment = "/tokens/segment"
    static let ids = "/tokens/ids"
    static let probePosition = "/probe/position"

    static func layer(_ i: Int) -> String { "/layers/\(i)" }
    static func layer(_ i: Int, _ name: LayerDataset) -> String { "/layers/\(i)/\(name.rawValue)" }
    /// Kv head `g` of a ragged cache layer (extension `ragged-heads`).
    static func head(_ i: Int, _ g: Int) -> String { "/layers/\(i)/heads/\(g)" }
}

/// The per-layer datasets of a dump.
public enum LayerDataset: String, CaseIterable, Codable, Sendable {
    case key, value
    case attnScore = "attn_score"
    case query
    case windowAttn = "window_attn"
    case probeQuery = "probe_query"
}

/// Token modality codes of `/tokens/modality`.
public enum Modality: UInt8, CaseIterable, Codable, Sendable {
    case text = 0
    case image = 1
    case video = 2
    case audio = 3

    public var name: String {
        switch self {
        case .text: return "text"
        case .image: return "image"
        case .video: return "video"
        case .audio: return "audio"
        }
    }
}
