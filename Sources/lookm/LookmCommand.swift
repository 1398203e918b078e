import ArgumentParser
import LookM

/// `lookm`: the root command. Subcommands do the work; this file only wires them up.
struct LookmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lookm",
        abstract: "Compress the KV cache of multimodal LLMs offline, from HDF5 dumps (LOOK-M).",
        discussion: """
            Exit codes: 0 success, 1 unexpected failure, 2 usage error (bad flags), \
            3 invalid input file, 4 output problem (exists without --force, not writable, disk full).
            File formats: docs/format.md; what compress computes: docs/method.md.
            """,
        version: lookmVersion,
        subcommands: [
            CompressCommand.self, ReportCommand.self, SweepCommand.self, CollectCommand.self, InspectCommand.self,
            SynthCommand.self,
        ])
}
