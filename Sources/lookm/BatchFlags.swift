import ArgumentParser
import Foundation
import LookM

/// The batch-mode flags `compress` and `sweep` share, and the loop that reports each dump.
struct BatchFlags: ParsableArguments {
    @Option(
        name: .customLong("out-dir"),
        help: ArgumentHelp("Batch mode: write DIR/<stem>.<output> per dump, results in DIR/results/.", valueName: "dir")
    )
    var outDir: String?
    @Option(
        help: ArgumentHelp(
            "Batch mode: also the dumps listed in this file, one path per line (# comments; relative to the file's folder).",
            valueName: "file"))
    var manifest: String?
    @Option(
        help: ArgumentHelp("Batch mode: only the dumps at positions p with p % N == I (0-based).", valueName: "I/N"))
    var shard: String?

    var isBatch: Bool { outDir != nil }

    /// Checks the batch flags against the rest: `extra` names a single-dump flag given alongside.
    func validate(inputs: [String], extra: String?) throws {
        guard let outDir else {
            if manifest != nil || shard != nil {
                throw ValidationError("--manifest and --shard are batch mode: add --out-dir DIR")
            }
            return
        }
        if let extra {
            throw ValidationError(
                "\(extra) names one output; batch mode (--out-dir \(outDir)) names them DIR/<stem>.*; drop one of them")
        }
        if inputs.contains("-") { throw ValidationError("batch mode reads dumps from files, not stdin (-)") }
        if inputs.isEmpty && manifest == nil {
            throw ValidationError("batch mode needs dumps: DUMP arguments or --manifest FILE")
        }
        if let shard {
            do { _ = try Shard(parsing: shard) } catch let e as LookMError { throw ValidationError(e.message) }
        }
    }

    /// Runs `job` over this shard; every record is one line on stderr (and stdout with `json`).
    /// Exits with the first failure's code, after every dump was tried.
    func run(_ job: BatchRunner.Job, dumps: [String], force: Bool, json: Bool) throws {
        guard let outDir else { return }
        let inputs = try BatchInputs(arguments: dumps, manifest: manifest)
        let shard = try shard.map { try Shard(parsing: $0) } ?? .all
        var stdoutFailure: Error?
        let records = try BatchRunner.run(job, inputs: inputs, outDir: outDir, shard: shard, force: force) {
            record, line in
            switch record.status {
            case .ok: printError(line ?? "lookm: \(record.output): done")
            case .skipped: printError("lookm: \(record.output): up to date, skipped")
            case .failed: printError("lookm: \(record.error ?? "failed")")
            }
            if json, stdoutFailure == nil, let text = try? record.line() {
                do { try StandardOutput.print(text) } catch { stdoutFailure = error }
            }
        }
        let failed = records.filter { $0.status == .failed }.count
        let skipped = records.filter { $0.status == .skipped }.count
        printError(
            "lookm: shard \(shard): \(records.count) dumps: \(records.count - failed - skipped) done, \(skipped) skipped, \(failed) failed"
        )
        if let stdoutFailure { throw stdoutFailure }
        let code = BatchRunner.exitCode(records)
        // Each failure was reported above: leave quietly with the first one's code.
        if code != 0 { throw LookMError(LookMError.Kind(rawValue: code) ?? .other, "") }
    }
}
