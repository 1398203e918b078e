import Foundation

/// A batch output read back: the settings and the dump it records it was made from. One reader
/// for the rerun check (`ExistingOutput`) and for `collect`.
struct RecordedOutput {
    /// The cache's canonical `method` JSON, or the sweep's `settings` array.
    var settings: String
    var source: SourceInfo
    /// A sweep result's rows (empty for a cache).
    var rows: [SweepRow]

    struct Invalid: Error { var reason: String }

    /// Reads a cache (it must open as a `lookm-kv-cache` with every layer's datasets in shape: an
    /// interrupted write never appears under the final name, so this catches copies cut short and
    /// files of other tools) or a sweep result (it must decode and record its settings and source).
    static func read(_ path: String, sweep: Bool) throws(Invalid) -> RecordedOutput {
        if sweep {
            guard let data = FileManager.default.contents(atPath: path),
                  let result = try? JSONDecoder().decode(SweepResult.self, from: data),
                  let settings = result.settings, let source = result.source else {
                throw Invalid(reason: "\(path): not a complete lookm sweep result")
            }
            return RecordedOutput(settings: settings, source: source, rows: result.rows)
        }
        do {
            let reader = try CacheReader(path: path)
            for i in 0..<reader.shape.numLayers { _ = try reader.layer(i) }
            return RecordedOutput(settings: reader.method, source: reader.source, rows: [])
        } catch {
            throw Invalid(reason: "\(error)")
        }
    }
}

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

    /// Checks the cache (or, `sweep`, the sweep result) at `path` against this run's canonical
    /// `settings` and the dump's current size and mtime.
    static func check(_ path: String, sweep: Bool, settings: String, source now: SourceInfo) -> ExistingOutput {
        guard FileManager.default.fileExists(atPath: path) else { return .absent }
        let recorded: RecordedOutput
        do { recorded = try RecordedOutput.read(path, sweep: sweep) } catch { return .invalid(error.reason) }
        guard recorded.settings == settings else { return .otherSettings("made with \(recorded.settings)") }
        let was = recorded.source
        guard was.size == now.size && was.mtime == now.mtime else {
            return .stale("the dump changed since (size \(was.size) -> \(now.size), mtime \(was.mtime) -> \(now.mtime))")
        }
        return .current
    }
}
