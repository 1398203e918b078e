import Foundation

/// Batch mode of `compress` and `sweep` (`--out-dir`): each dump of this worker's shard gets one
/// output in the folder and one result record; a dump that fails does not stop the others.
///
/// Reruns redo only what is missing: an output that is complete, made with the same settings from
/// the dump as it is now, is skipped (see `ExistingOutput`). Workers never coordinate: shards are
/// disjoint by construction, outputs appear atomically, and each worker appends to its own
/// results file.
public enum BatchRunner {
    /// What one kind of batch does with one dump.
    public struct Job {
        /// `compress` or `sweep`, recorded in every result.
        public let command: String
        /// `<stem>.lookm.h5` or `<stem>.sweep.json`.
        let outputName: (_ stem: String) -> String
        /// What is under the output's name already (may open the dump's header).
        let check: (_ dump: String, _ output: String, _ source: SourceInfo) throws -> ExistingOutput
        /// Makes the output; `replace` allows writing over what is there.
        let run: (_ dump: String, _ output: String, _ replace: Bool) throws -> Outcome
    }

    /// What a finished dump reports; compress fills in the byte counts.
    public struct Outcome {
        var kept: Int? = nil
        var tokens: Int? = nil
        var kvBytesIn: Int? = nil
        var kvBytesOut: Int? = nil
        var fileBytes: Int? = nil
        /// The line for people (stderr).
        var line: String? = nil
    }

    /// Runs `job` over this worker's shard. Returns every record, in manifest order; `announce`
    /// sees each one as it is written.
    public static func run(
        _ job: Job, inputs: BatchInputs, outDir: String, shard: Shard, force: Bool,
        announce: (BatchRecord, _ line: String?) -> Void
    ) throws -> [BatchRecord] {
        let outDir = Paths.absolute(outDir)
        try Directories.make(outDir)
        // Every dump of the batch (not only this shard's) is an input: one may sit under another's
        // output name (x.h5 and a dump called x.lookm.h5), and outputs never replace inputs.
        let registrations = inputs.items.map { RunInputs.register($0.dump) }
        defer { withExtendedLifetime(registrations) {} }
        let mine = inputs.shard(shard)
        AtomicOutput.removeStaleTemporaries(dir: outDir, base: nil, host: AtomicOutput.hostName())
        let log = try ResultLog(outDir: outDir, shard: shard)
        var logFailure: LookMError?
        var records: [BatchRecord] = []
        for item in mine {
            let start = ContinuousClock.now
            let output = outDir + "/" + job.outputName(item.stem)
            var record = BatchRecord(
                command: job.command, dump: item.dump, output: output, status: .ok, error: nil, exitCode: 0,
                seconds: 0, time: "", shard: shard.description, host: AtomicOutput.hostName(), pid: getpid())
            var line: String?
            do {
                _ = try InputFile(item.dump)  // exists and is a file, else "no such file"
                let source = SourceInfo.of(dump: item.dump)
                let existing = try job.check(item.dump, output, source)
                switch existing {
                case .current:
                    record.status = .skipped
                case .otherSettings(let why) where !force:
                    throw LookMError.output(
                        output, nil, "exists, \(why); pass --force to replace it, or choose another --out-dir")
                case .foreign(let why) where !force:
                    let reason = why.hasPrefix(output + ": ") ? String(why.dropFirst(output.count + 2)) : why
                    throw LookMError.output(
                        output, nil,
                        "exists and is not a lookm \(job.command) output (\(reason)); pass --force to replace it, or choose another --out-dir"
                    )
                case .absent, .invalid, .stale, .otherSettings, .foreign:
                    if case .invalid(let why) = existing { record.error = "redone: \(why)" }
                    if case .stale(let why) = existing { record.error = "redone: \(why)" }
                    let outcome = try job.run(item.dump, output, existing != .absent)
                    record.kept = outcome.kept
                    record.tokens = outcome.tokens
                    record.kvBytesIn = outcome.kvBytesIn
                    record.kvBytesOut = outcome.kvBytesOut
                    record.fileBytes = outcome.fileBytes
                    line = outcome.line
                }
            } catch {
                let e = error as? LookMError ?? LookMError(.other, "\(item.dump): \(error)")
                if Self.madeMeanwhile(job, item: item, output: output) {
                    // Another worker on the same shard finished this output first: it is done.
                    record.status = .skipped
                    record.error = nil
                } else {
                    record.status = .failed
                    record.error = e.message
                    record.exitCode = e.exitCode
                }
            }
            record.seconds = (ContinuousClock.now - start).seconds
            record.time = BatchRecord.now()
            // A results file that cannot be written (disk full) does not stop the batch: the
            // outputs are what matters, and a rerun records the skipped ones.
            if logFailure == nil {
                do { try log.append(record) } catch { logFailure = error as? LookMError }
            }
            records.append(record)
            announce(record, line)
        }
        if let logFailure { throw logFailure }
        return records
    }

    /// Whether `output` is, now, a current output of this job for `item` (made by a concurrent worker).
    private static func madeMeanwhile(_ job: Job, item: BatchInputs.Item, output: String) -> Bool {
        let source = SourceInfo.of(dump: item.dump)
        return (try? job.check(item.dump, output, source)) == .current
    }

    /// The exit code of a batch: 0, or the code of the first failed dump in manifest order.
    public static func exitCode(_ records: [BatchRecord]) -> Int32 {
        records.first { $0.status == .failed }?.exitCode ?? 0
    }
}

extension BatchRunner.Job {
    /// `compress` over many dumps: `<stem>.lookm.h5` each, skipped when current.
    public static func compress(method: Method, codec: Codec, threads: Int) -> Self {
        Self(
            command: "compress", outputName: { "\($0).lookm.h5" },
            check: { dump, output, source in
                let reader = try DumpReader(path: dump)
                let shape = reader.shape
                // A --target-bytes budget is found per dump, as compress records it.
                return ExistingOutput.check(
                    output, sweep: false,
                    settings: try method.fitted(to: reader).canonicalJSON(
                        gqa: shape.numKVHeads != shape.numHeads, codec: codec),
                    source: source)
            },
            run: { dump, output, replace in
                let s = try Compressor.run(
                    input: try InputFile(dump), destination: .file(output), force: replace, method: method,
                    codec: codec,
                    threads: threads)
                return .init(
                    kept: s.layers.reduce(0) { $0 + $1.kept }, tokens: s.seqLen * s.layers.count,
                    kvBytesIn: s.kvBytesIn,
                    kvBytesOut: s.kvBytesOut, fileBytes: s.fileBytes, line: s.line)
            })
    }

    /// `sweep` over many dumps: `<stem>.sweep.json` each (with its settings and source, so a rerun
    /// can tell it is current), skipped when current.
    public static func sweep(settings: [SweepSetting], threads: Int, keepCaches: String?)
        -> Self
    {
        Self(
            command: "sweep", outputName: { "\($0).sweep.json" },
            check: { dump, output, source in
                let shape = try DumpReader(path: dump).shape
                return ExistingOutput.check(
                    output, sweep: true, settings: Sweeper.settingsJSON(settings, shape: shape), source: source)
            },
            run: { dump, output, replace in
                let result = try Sweeper.run(
                    dump: try InputFile(dump), settings: settings, threads: threads, keepCaches: keepCaches,
                    force: replace)
                try AtomicOutput.write(try result.render(.json) + "\n", to: output, force: replace, inputs: [dump])
                return .init(line: "lookm: \(output): \(result.rows.count) settings")
            })
    }
}
