import ArgumentParser
import LookM

extension OutputFormat: ExpressibleByArgument {}
extension ReportLevel: ExpressibleByArgument {}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "What a cache saved and, with --reference, what it cost.",
        discussion: """
            Memory (the cache alone): K/V bytes of the original dump, of the cache in memory and on \
            disk, tokens kept per layer and modality, merged tokens. Fidelity (--reference, the dump \
            the cache came from), per layer and query head: attention-output error and cosine over \
            the dump's probe queries (else its last prompt queries), attention-mass recall split \
            into kept and merged positions, and how far merging moved keys and values; mean, worst \
            and where. Formats: table (default), json (docs/report.md, report_version 1), csv.
            """)

    @Argument(help: ArgumentHelp("The cache (.h5), or - to read it from stdin.", valueName: "cache"))
    var cache: String

    @Option(help: ArgumentHelp("The dump the cache was made from, for the fidelity part.", valueName: "dump"))
    var reference: String?

    @Option(help: "table, json or csv.") var format: OutputFormat = .table
    @Option(help: "Rows: total (one summary), layer, or head.") var by: ReportLevel = .total
    @Option(help: ArgumentHelp("Also draw fidelity (or memory) per layer as an SVG.", valueName: "file.svg")) var plot:
        String?
    @Flag(help: "Replace an existing --plot file.") var force = false
    @Option(parsing: .unconditional, help: "Worker threads (default: SLURM_CPUS_PER_TASK, else every core).")
    var threads: Int?

    func validate() throws {
        if reference == "-" && cache == "-" {
            throw ValidationError("only one of the cache and --reference can come from stdin")
        }
    }

    func run() throws {
        let cacheFile = try InputFile(cache)
        let referenceFile = try reference.map { try InputFile($0) }
        let plotOutput = try plot.map { try TextOutput(path: $0, force: force) }
        try StandardOutput.requireNotInput()
        let report = try Reporter.report(
            cache: cacheFile, reference: referenceFile, threads: try Parallel.workers(threads, flag: "--threads"))
        if let plotOutput { try report.plot.write(to: plotOutput) }
        try StandardOutput.print(try report.render(format, by: by))
    }
}
