import Foundation

/// What is already under a batch output's name, and what a rerun does about it.
enum ExistingOutput: Equatable {
    /// Nothing there: make it.
    case absent
    /// A complete output of these settings from the dump as it is now: skip.
    case current
    /// Not a complete, valid output (truncated, foreign, another kind of file): redo it.
    case invalid(String)
    /// Valid, same settings, but the dump changed since (size or mtime): redo it.
    case stale(String)
    /// Valid, made with other settings: an error unless --force (never replace work silently).
    case otherSettings(String)

    /// Checks a cache: it must open as a `lookm-kv-cache` with every layer's datasets in shape
    /// (an interrupted write never appears under the final name, so this catches copies cut short
    /// and files of other tools), carry exactly `method`, and name the dump's current size and mtime.
    static func cache(at path: String, method: String, source: SourceInfo) -> ExistingOutput {
        guard FileManager.default.fileExists(atPath: path) else { return .absent }
        let reader: CacheReader
        do {
            reader = try CacheReader(path: path)
            for i in 0..<reader.shape.numLayers { _ = try reader.layer(i) }
        } catch {
            return .invalid("\(error)")
        }
        return verdict(method: reader.method, expected: method, source: reader.source, expected: source)
    }

    /// Checks a sweep file: it must decode as a sweep result that records its settings and source.
    static func sweep(at path: String, settings: String, source: SourceInfo) -> ExistingOutput {
        guard FileManager.default.fileExists(atPath: path) else { return .absent }
        guard let data = FileManager.default.contents(atPath: path),
              let result = try? JSONDecoder().decode(SweepResult.self, from: data),
              let recorded = result.settings, let recordedSource = result.source else {
            return .invalid("\(path): not a complete lookm sweep result")
        }
        return verdict(method: recorded, expected: settings, source: recordedSource, expected: source)
    }

    private static func verdict(method: String, expected: String, source: SourceInfo, expected now: SourceInfo) -> ExistingOutput {
        guard method == expected else { return .otherSettings("made with \(method)") }
        guard source.size == now.size && source.mtime == now.mtime else {
            return .stale("the dump changed since (size \(source.size) -> \(now.size), mtime \(source.mtime) -> \(now.mtime))")
        }
        return .current
    }
}
