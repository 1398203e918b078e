import Foundation

/// A batch output read back: the settings and the dump it records it was made from. One reader
/// for the rerun check (`ExistingOutput`) and for `collect`.
struct RecordedOutput {
    /// The cache's canonical `method` JSON, or the sweep's `settings` array.
    var settings: String
    var source: SourceInfo
    /// A sweep result's rows (empty for a cache).
    var rows: [SweepRow]

    struct Invalid: Error {
        var reason: String
        /// The file is lookm's kind of output (a cache's `format` attribute, a sweep result's
        /// keys) but damaged; false: some other file, which a batch never replaces unasked.
        var ours: Bool
    }

    /// Reads a cache or a sweep result and validates it as fully as `lookm inspect` does (every
    /// value of every layer, the slot tables' consistency): an interrupted write never appears
    /// under the final name, so this catches copies cut short, damaged chunks and other tools' files.
    static func read(_ path: String, sweep: Bool) throws(Invalid) -> RecordedOutput {
        if sweep {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw Invalid(reason: "\(path): cannot be read", ours: false)
            }
            guard let result = try? JSONDecoder().decode(SweepResult.self, from: data),
                let settings = result.settings, let source = result.source
            else {
                let ours =
                    (try? JSONSerialization.jsonObject(with: data)).flatMap { $0 as? [String: Any] }.map {
                        $0["rows"] != nil
                    } ?? false
                throw Invalid(reason: "\(path): not a complete lookm sweep result", ours: ours)
            }
            return RecordedOutput(settings: settings, source: source, rows: result.rows)
        }
        do {
            let reader = try CacheReader(path: path)
            _ = try Inspector.inspect(cache: reader, path: path, name: path)
            return RecordedOutput(settings: reader.method, source: reader.source, rows: [])
        } catch {
            let format = try? H5File.openForReading(path).rootAttributes().string("format")
            throw Invalid(reason: "\(error)", ours: format == Layout.cacheFormat)
        }
    }
}

/// What is already under a batch output's name, and what a rerun does about it.
enum ExistingOutput: Equatable {
    /// Nothing there: make it.
    case absent
    /// A complete output of these settings from the dump as it is now: skip.
    case current
    /// A damaged output of lookm's (a value or chunk that does not read): redo it.
    case invalid(String)
    /// Some other file (another tool's, a dump, cut short beyond recognition): an error unless
    /// --force (never replace a file lookm did not make without being asked).
    case foreign(String)
    /// Valid, same settings, but the dump changed since (size or mtime): redo it.
    case stale(String)
    /// Valid, made with other settings: an error unless --force (never replace work silently).
    case otherSettings(String)

    /// Checks the cache (or, `sweep`, the sweep result) at `path` against this run's canonical
    /// `settings` and the dump's current size and mtime.
    static func check(_ path: String, sweep: Bool, settings: String, source now: SourceInfo) -> ExistingOutput {
        guard FileManager.default.fileExists(atPath: path) else { return .absent }
        let recorded: RecordedOutput
        do { recorded = try RecordedOutput.read(path, sweep: sweep) } catch {
            return error.ours ? .invalid(error.reason) : .foreign(error.reason)
        }
        guard recorded.settings == settings else { return .otherSettings("made with \(recorded.settings)") }
        let was = recorded.source
        guard was.size == now.size && was.mtime == now.mtime else {
            return .stale(
                "the dump changed since (size \(was.size) -> \(now.size), mtime \(was.mtime) -> \(now.mtime))")
        }
        return .current
    }
}
