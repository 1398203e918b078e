import ArgumentParser
import Foundation
import LookM

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Compare methods and budgets on one dump: memory kept against fidelity.",
        discussion: """
            Runs every --methods x --budgets setting (a budget keeps floor(L*B) tokens, split 1:1, so \
            every method keeps the same number) reading each layer once, and prints one row per \
            setting: kept share, memory saved, attention-output error and cosine, mass recall. No \
            cache is written unless --keep-caches DIR. --plot draws memory against fidelity per method.

            Batch mode (--out-dir DIR, docs/batch.md): every DUMP and every --manifest line gets \
            DIR/<stem>.sweep.json (the --format json document); --shard I/N, skipping of current \
            results and DIR/results/ work as for compress; `lookm collect DIR` merges the tables.
            """)

    @Argument(
        help: ArgumentHelp("The dump (.h5), or - to read it from stdin; several with --out-dir.", valueName: "dump"))
    var dumps: [String] = []

    @OptionGroup var batch: BatchFlags

    @Option(
        help:
            "Comma-separated methods of docs/method.md section 5, each optionally +pyramid and/or +adakv (lookm+pyramid+adakv)."
    )
    var methods = Sweeper.defaultMethods.joined(separator: ",")
    @Option(help: "Comma-separated budgets (shares of the prompt to keep).")
    var budgets = Sweeper.defaultBudgets.map { "\($0)" }.joined(separator: ",")
    @OptionGroup var pyramid: PyramidFlags
    @Option(
        help:
            "Comma-separated storages crossed with every setting: none, int8, int4, int2, fp8 (docs/method.md section 12)."
    )
    var quants = "none"
    @OptionGroup var quantFlags: QuantFlags
    @Option(help: "table, json or csv.") var format: OutputFormat = .table
    @Option(help: ArgumentHelp("Also draw memory against fidelity per method as an SVG.", valueName: "file.svg"))
    var plot: String?
    @Option(
        parsing: .unconditional,
        help: "Worker threads (default: SLURM_CPUS_PER_TASK, else every core); results are the same for any value.")
    var jobs: Int?
    @Option(
        name: .customLong("keep-caches"),
        help: ArgumentHelp("Also write every setting's cache into this directory.", valueName: "dir"))
    var keepCaches: String?
    @Flag(
        help:
            "Replace an existing --plot file and, with --keep-caches, existing caches (batch mode: also sweep results of other settings)."
    ) var force = false
    @Flag(help: "Batch mode: also print each dump's result record on stdout (JSON lines).") var json = false

    func validate() throws {
        try batch.validate(inputs: dumps, extra: plot != nil ? "--plot" : nil)
        if !batch.isBatch {
            if json { throw ValidationError("--json is for batch mode; for one dump use --format json") }
            guard dumps.count == 1 else {
                throw ValidationError(
                    dumps.isEmpty
                        ? "give a dump to sweep"
                        : "\(dumps.count) dumps given: sweep several with --out-dir DIR (batch mode)")
            }
        }
    }

    func run() throws {
        let budgetValues = try list(budgets, flag: "--budgets", example: "0.05,0.1,0.2").map { text -> Double in
            guard let b = Double(text) else {
                throw LookMError.usage("--budgets: '\(text)' is not a number; e.g. --budgets 0.05,0.1,0.2")
            }
            return b
        }
        let methodList = try list(methods, flag: "--methods", example: "lookm,h2o")
        if pyramid.given && !methodList.contains(where: { $0.contains("+pyramid") }) {
            throw LookMError.usage(
                "--pyramid-beta and --pyramid-window set the +pyramid entries of --methods, and there is none; e.g. --methods lookm,lookm+pyramid"
            )
        }
        let settings = try Sweeper.settings(
            methods: methodList, budgets: budgetValues,
            allocationFlags: pyramid.allocationFlags, quants: try list(quants, flag: "--quants", example: "none,int4"),
            quantGroup: quantFlags.group, quantResidual: quantFlags.residual)
        let threads = try Parallel.workers(jobs, flag: "--jobs")
        if batch.isBatch {
            try batch.run(
                .sweep(settings: settings, threads: threads, keepCaches: keepCaches), dumps: dumps, force: force,
                json: json)
            return
        }
        let dump = try InputFile(dumps[0])
        let plotOutput = try plot.map { try TextOutput(path: $0, force: force) }
        try StandardOutput.requireNotInput()
        let progress = Progress("sweep: layer")
        let result = try Sweeper.run(
            dump: dump, settings: settings, threads: threads,
            keepCaches: keepCaches, force: force
        ) { progress.update($0, of: $1) }
        progress.finish()
        if let plotOutput { try result.plot.write(to: plotOutput) }
        try StandardOutput.print(try result.render(format))
    }

    /// A comma-separated flag's entries; an empty one (`0.1,,0.2`) is a typo, not something to skip.
    private func list(_ text: String, flag: String, example: String) throws -> [String] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        if parts.contains("") { throw LookMError.usage("\(flag) \(text): an entry is empty; e.g. \(flag) \(example)") }
        return parts
    }
}
