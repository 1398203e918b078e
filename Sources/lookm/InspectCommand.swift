import ArgumentParser
import LookM

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Validate a dump or cache and summarise it.",
        discussion: """
            Reads every layer, head and value: exits 0 only if the file is valid (exit 3 with the \
            reason otherwise). Shows the model, shapes, element type, tokens per modality and the \
            image spans, the datasets present, K/V bytes per layer and in total, and for a cache the \
            method settings and kept tokens per layer.
            """)

    @Argument(help: ArgumentHelp("A dump or cache (.h5), or - to read one from stdin.", valueName: "file"))
    var file: String

    @Flag(help: "Print one JSON document (keys in docs/inspect.md) instead of the summary.")
    var json = false

    func run() throws {
        let input = try InputFile(file)
        try StandardOutput.requireNotInput()
        let report = try Inspector.inspect(path: input.path, displayName: input.displayName)
        try StandardOutput.print(json ? try report.json() : report.text)
    }
}
