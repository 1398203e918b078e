import ArgumentParser
import LookM

struct CollectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collect",
        abstract: "Gather a batch folder's results: one table, and what is still missing.",
        discussion: """
            Reads DIR/results/*.jsonl (written by compress or sweep with --out-dir; the latest record \
            of a dump counts) and checks every output. Prints one row per dump (sweep batches: per \
            dump and setting) on stdout, and on stderr every dump with no result, a failed one, an \
            output that is gone or not valid, or one made from an older version of the dump. Exit \
            status 0 when every dump is done, 1 while anything is missing. Give the batch's \
            --manifest so dumps that never ran count too. Keys: docs/batch.md.
            """)

    @Argument(help: ArgumentHelp("The batch's --out-dir.", valueName: "dir")) var dir: String
    @Option(help: ArgumentHelp("The batch's manifest: every dump it lists must be done.", valueName: "file"))
    var manifest: String?
    @Option(help: "compress or sweep (default: what the results hold).") var kind: String?
    @Option(help: "table, json or csv.") var format: OutputFormat = .table

    func validate() throws {
        if let kind, kind != "compress" && kind != "sweep" {
            throw ValidationError("--kind \(kind): use compress or sweep")
        }
    }

    func run() throws {
        let collection = try Collector.collect(outDir: dir, manifest: manifest, kind: kind)
        try StandardOutput.print(try collection.render(format))
        for line in collection.problemLines { printError(line) }
        if !collection.complete { throw LookMError(.other, "") }
    }
}
